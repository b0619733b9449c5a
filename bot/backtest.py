"""`python -m bot backtest SYMBOL [--tf TF] [--bars N] [--seed N] [--csv FILE]`.

Runs every agent and the consensus walk-forward over history from the
simulated terminal (seeded), or over a CSV with the header
``time,open,high,low,close[,volume]``, and prints per-agent hit rates with
95 % confidence intervals beside a random-direction baseline and buy-and-hold.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from domain.agents.backtest import BacktestConfig, format_report, run_backtest
from domain.agents.series import Series
from domain.market import make_gateway
from domain.market.clock import ManualClock
from domain.market.errors import UnknownSymbol
from domain.market.models import Timeframe

MAX_BARS = 20_000
# The simulated history ends here, so a seed alone fixes every bar: two runs agree.
HISTORY_END = datetime(2026, 11, 2, tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("symbol", help="e.g. EURUSD")
    parser.add_argument("--tf", default="H1", choices=[tf.value for tf in Timeframe], help="timeframe (default H1)")
    parser.add_argument("--bars", type=int, default=5000, help=f"bars of history, up to {MAX_BARS} (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated terminal and the random baseline")
    parser.add_argument("--csv", type=Path, help="read bars from this CSV instead of the simulated terminal")


async def _simulated(symbol: str, tf: Timeframe, count: int, seed: int) -> Series:
    gateway = make_gateway("sim", seed=seed, clock=ManualClock(HISTORY_END))
    await gateway.connect()
    try:
        bars = await gateway.bars(symbol, tf, count)
    finally:
        await gateway.close()
    return Series.from_bars(bars, symbol=symbol, timeframe=tf)


def _progress(out: TextIO):  # type: ignore[no-untyped-def]
    def show(done: int, total: int) -> None:
        filled = round(30 * done / total)
        out.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
        if done == total:
            out.write("\n")
        out.flush()

    return show


def main(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    symbol, tf = args.symbol.upper(), Timeframe(args.tf)
    if not 0 < args.bars <= MAX_BARS:
        err.write(f"--bars must be between 1 and {MAX_BARS}\n")
        return 2
    try:
        if args.csv is not None:
            series = Series.from_csv(args.csv, symbol=symbol, timeframe=tf)
            series = series[max(0, len(series) - args.bars) :]
        else:
            series = asyncio.run(_simulated(symbol, tf, args.bars, args.seed))
    except UnknownSymbol as exc:
        hint = f"; did you mean {', '.join(exc.suggestions)}?" if exc.suggestions else ""
        err.write(f"unknown symbol {symbol}{hint}\n")
        return 2
    except (OSError, ValueError) as exc:
        err.write(f"cannot read {args.csv}: {exc}\n")
        return 2
    source = f"CSV {args.csv}" if args.csv is not None else f"the simulated terminal (seed {args.seed}, up to {HISTORY_END:%Y-%m-%d})"
    out.write(f"History: {source}\n")
    try:
        report = run_backtest(series, config=BacktestConfig(seed=args.seed), progress=_progress(err))
    except ValueError as exc:  # too little history
        err.write(f"{exc}\n")
        return 2
    out.write(format_report(report) + "\n")
    return 0
