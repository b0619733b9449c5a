"""`python -m bot backtest SYMBOL [--tf TF] [--bars N] [--seed N] [--csv FILE] [--cost C]`.

Runs every agent and the consensus walk-forward over history from the
simulated terminal (seeded), or over a CSV with the header
``time,open,high,low,close[,volume]``, and prints per-agent hit rates with
95 % confidence intervals beside a random-direction baseline, then P/L,
drawdown and Sharpe net of costs beside the gross figures, and buy-and-hold.

A CSV's timeframe comes from its median bar spacing (daily bars with weekend
gaps are D1); ``--tf`` may name it, and one that contradicts the bars is an
error. ``--cost`` is price units per round trip; by default the symbol's
typical spread from the symbol table (0 for a symbol outside it, said so).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from domain.agents.backtest import (
    BacktestConfig,
    default_cost,
    detect_timeframe,
    format_report,
    median_spacing,
    run_backtest,
)
from domain.agents.series import Series
from domain.market import make_gateway
from domain.market.clock import ManualClock
from domain.market.errors import UnknownSymbol
from domain.market.models import Timeframe

MAX_BARS = 20_000
DEFAULT_TF = Timeframe.H1  # of the simulated terminal; a CSV brings its own
# The simulated history ends here, so a seed alone fixes every bar: two runs agree.
HISTORY_END = datetime(2026, 11, 2, tzinfo=UTC)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("symbol", help="e.g. EURUSD")
    parser.add_argument(
        "--tf", choices=[tf.value for tf in Timeframe],
        help=f"timeframe (default {DEFAULT_TF.value}; a CSV's is read from its bar spacing)",
    )  # fmt: skip
    parser.add_argument("--bars", type=int, default=5000, help=f"bars of history, up to {MAX_BARS} (default 5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated terminal and the random baseline")
    parser.add_argument("--csv", type=Path, help="read bars from this CSV instead of the simulated terminal")
    parser.add_argument(
        "--cost", type=float,
        help="price units per round trip, charged once per signal (default: the symbol's typical spread)",
    )  # fmt: skip


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


def _spacing(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "none"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def _from_csv(path: Path, symbol: str, tf: Timeframe | None, bars: int) -> Series | str:
    """The CSV's last ``bars`` bars on their detected timeframe, or why not."""
    series = Series.from_csv(path, symbol=symbol)
    found = detect_timeframe(series.time)
    if found is None:
        supported = ", ".join(t.value for t in Timeframe)
        return (f"cannot tell the timeframe of {path}: its median bar spacing is {_spacing(median_spacing(series.time))}"
                f" (supported: {supported})")  # fmt: skip
    if tf is not None and tf is not found:
        return (f"--tf {tf.value} contradicts {path}: its bars are {found.value} "
                f"(median spacing {_spacing(median_spacing(series.time))}); drop --tf or pass --tf {found.value}")  # fmt: skip
    series = dataclasses.replace(series, timeframe=found)
    return series[max(0, len(series) - bars) :]


def _cost(symbol: str, given: float | None) -> tuple[float, str] | str:
    """The cost per round trip and where it comes from, or why the given one is refused."""
    if given is not None:
        if not math.isfinite(given) or given < 0:
            return f"--cost must be a price difference >= 0, got {given:g}"
        return given, "--cost"
    spread = default_cost(symbol)
    if spread is None:
        return 0.0, f"no typical spread known for {symbol}: pass --cost to charge one"
    return spread, f"{symbol}'s typical spread"


def main(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    symbol = args.symbol.upper()
    tf = Timeframe(args.tf) if args.tf is not None else None
    if not 0 < args.bars <= MAX_BARS:
        err.write(f"--bars must be between 1 and {MAX_BARS}\n")
        return 2
    cost = _cost(symbol, args.cost)
    if isinstance(cost, str):
        err.write(cost + "\n")
        return 2
    try:
        if args.csv is not None:
            series = _from_csv(args.csv, symbol, tf, args.bars)
            if isinstance(series, str):
                err.write(series + "\n")
                return 2
        else:
            series = asyncio.run(_simulated(symbol, tf or DEFAULT_TF, args.bars, args.seed))
    except UnknownSymbol as exc:
        hint = f"; did you mean {', '.join(exc.suggestions)}?" if exc.suggestions else ""
        err.write(f"unknown symbol {symbol}{hint}\n")
        return 2
    except (OSError, ValueError) as exc:
        err.write(f"cannot read {args.csv}: {exc}\n")
        return 2
    source = f"CSV {args.csv}" if args.csv is not None else f"the simulated terminal (seed {args.seed}, up to {HISTORY_END:%Y-%m-%d})"
    out.write(f"History: {source}\n")
    out.write(f"Costs: {cost[0]:g} per round trip ({cost[1]})\n")
    try:
        report = run_backtest(series, config=BacktestConfig(seed=args.seed, cost=cost[0]), progress=_progress(err))
    except ValueError as exc:  # too little history
        err.write(f"{exc}\n")
        return 2
    out.write(format_report(report) + "\n")
    return 0
