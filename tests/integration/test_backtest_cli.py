"""`python -m bot backtest` from outside: the tables on the simulated history, on the real EURUSD CSV, on a daily CSV."""

from __future__ import annotations

import math
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from domain.market.sim import packaged_history

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ("trend", "reversion", "momentum", "breakout", "learner", "consensus", "buy&hold")
# The EURUSD CSV at cost 0, as the CLI printed it before costs existed: (P/L, P/L %, random P/L) per row.
# Sharpe and maxDD % are not here: they now follow quantstats (returns of the equity, one-episode drawdown).
GROSS_BEFORE = {
    "trend": ("-0.03314", "-3.01", "+0.00281"),
    "reversion": ("-0.02917", "-2.65", "+0.00121"),
    "momentum": ("-0.01896", "-1.72", "+0.00182"),
    "breakout": ("+0.07209", "+6.55", "-0.00094"),
    "learner": ("+0.08978", "+8.15", "-0.00075"),
    "consensus": ("-0.01598", "-1.45", "-0.00075"),
    "buy&hold": ("+0.12772", "+11.60", None),
}
HITS_BEFORE = {  # signals, hit %, 95 % CI, p
    "trend": ("298", "43.3", "[37.8,", "49.0]", "0.934"),
    "learner": ("898", "48.6", "[45.3,", "51.8]", "0.156"),
}


def _backtest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "backtest", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def _hits(stdout: str) -> dict[str, list[str]]:
    """The hit-rate table: agent, signals, open, hit %, CI low, CI high, random %, band low, band high, p."""
    table = stdout.split("\n\n")[1]
    return {row[0]: row for row in (line.split() for line in table.splitlines()[1:])}


def _money(stdout: str) -> dict[str, tuple[list[str], list[str], list[str]]]:
    """The P/L table: per agent (net columns, gross columns, random P/L)."""
    table = stdout.split("\n\n")[2]
    rows = {}
    for line in table.splitlines():
        cells = [c.split() for c in line.split("|")]
        if len(cells) == 3 and cells[0] and cells[0][0] in AGENTS:
            rows[cells[0][0]] = (cells[0][1:], cells[1], cells[2])
    return rows


def test_backtest_on_the_real_eurusd_csv() -> None:
    result = _backtest("EURUSD", "--csv", str(packaged_history()))
    assert result.returncode == 0, result.stderr
    assert "2018-02-07 15:00" in result.stdout  # the CSV's last bar
    assert "Backtest EURUSD H1" in result.stdout and "annualized with 6240 bars a year (H1)" in result.stdout
    assert "Costs: 0.0001 per round trip (EURUSD's typical spread)" in result.stdout
    hits = _hits(result.stdout)
    assert set(hits) == set(AGENTS[:-1])
    for agent in AGENTS[:-1]:
        signals, hit = int(hits[agent][1]), float(hits[agent][3])
        low, high = float(hits[agent][4].strip("[,")), float(hits[agent][5].strip("]"))
        assert signals > 0 and low <= hit <= high  # a hit rate with its confidence interval
    money = _money(result.stdout)
    assert set(money) == set(AGENTS)
    for agent in AGENTS[:-1]:
        net, gross, _ = money[agent]
        # net = gross less one pip per signal (P/L and P/L % columns), gross as before costs existed
        assert float(net[0]) == pytest.approx(float(gross[0]) - 0.0001 * int(hits[agent][1]), abs=2e-5)
        assert gross[:2] == list(GROSS_BEFORE[agent][:2])
        assert float(net[4]) < float(gross[4])  # Sharpe
    assert money["learner"][0][1] == "-0.00"  # the learner's +8.15 % is gone at a 1-pip round trip
    assert "30/30" not in result.stderr and "[" in result.stderr  # the progress bar ran


def test_cost_zero_reproduces_the_gross_figures() -> None:
    result = _backtest("EURUSD", "--csv", str(packaged_history()), "--cost", "0")
    assert result.returncode == 0, result.stderr
    assert "Costs: 0 per round trip (--cost)" in result.stdout
    money = _money(result.stdout)
    for agent, (pnl, pct, rnd) in GROSS_BEFORE.items():
        net, gross, random_pnl = money[agent]
        assert net == gross, agent  # every column: P/L, P/L %, maxDD, maxDD %, Sharpe
        assert net[:2] == [pnl, pct], agent
        assert random_pnl == ([rnd] if rnd else []), agent
    hits = _hits(result.stdout)
    for agent, row in HITS_BEFORE.items():
        assert (hits[agent][1], *hits[agent][3:6], hits[agent][9]) == row
    # buy-and-hold's Sharpe is quantstats' sharpe(closes.pct_change(), periods=6240) on the tested bars: 2.06
    assert money["buy&hold"][1][4] == "+2.06"


def _daily_csv(path: Path, n: int = 620, seed: int = 11) -> np.ndarray:
    """Weekday closes of a stock-like random walk, as a CSV with dates; returns the closes."""
    rng = np.random.default_rng(seed)
    close = np.round(140.0 * np.exp(np.cumsum(rng.normal(0.0005, 0.017, n))), 2)
    day, rows = datetime(2021, 1, 4, tzinfo=UTC), ["time,open,high,low,close,volume"]
    for i, c in enumerate(close):
        while day.weekday() >= 5:  # markets shut at weekends: gaps of three days every week
            day += timedelta(days=1)
        o = close[i - 1] if i else c
        rows.append(f"{day:%Y-%m-%d},{o},{max(o, c) + 0.5:.2f},{min(o, c) - 0.5:.2f},{c},{1000 + i}")
        day += timedelta(days=1)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return close


def _quantstats_sharpe(close: np.ndarray, periods: int = 252) -> float:
    """quantstats.stats.sharpe (and empyrical.sharpe_ratio) on prices, rf = 0: their documented formula.

    ``returns = prices.pct_change().dropna(); returns.mean() / returns.std(ddof=1) * sqrt(periods)``.
    """
    returns = [close[i] / close[i - 1] - 1 for i in range(1, len(close))]
    mean = sum(returns) / len(returns)
    sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / (len(returns) - 1))
    return mean / sd * math.sqrt(periods)


def test_daily_csv_is_d1_with_quantstats_sharpe(tmp_path: Path) -> None:
    csv = tmp_path / "goog_daily.csv"
    close = _daily_csv(csv)
    result = _backtest("GOOG", "--csv", str(csv))
    assert result.returncode == 0, result.stderr
    assert "Backtest GOOG D1: 620 bars" in result.stdout
    assert "annualized with 252 bars a year (D1)" in result.stdout
    assert "Costs: 0 per round trip (no typical spread known for GOOG: pass --cost to charge one)" in result.stdout
    net, gross, _ = _money(result.stdout)["buy&hold"]
    expected = _quantstats_sharpe(close[300:])  # the test period starts at bar 300
    assert float(gross[4]) == pytest.approx(expected, rel=0.01, abs=0.005)
    assert net == gross  # no cost charged
    # the same series told it is H1 is refused, not annualized with 6,240 bars
    wrong = _backtest("GOOG", "--csv", str(csv), "--tf", "H1")
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert "--tf H1 contradicts" in wrong.stderr and "its bars are D1 (median spacing 1 d)" in wrong.stderr
    named = _backtest("GOOG", "--csv", str(csv), "--tf", "D1", "--cost", "0.05")
    assert named.returncode == 0, named.stderr
    assert "Costs: 0.05 per round trip (--cost)" in named.stdout
    net, gross, _ = _money(named.stdout)["buy&hold"]
    assert float(net[0]) == pytest.approx(float(gross[0]) - 0.05, abs=1e-5)


def test_backtest_on_the_simulated_terminal_is_deterministic() -> None:
    first = _backtest("gbpusd", "--bars", "1500", "--seed", "5")
    second = _backtest("GBPUSD", "--bars", "1500", "--seed", "5")
    assert first.returncode == 0, first.stderr
    assert "simulated terminal (seed 5, up to 2026-11-02)" in first.stdout
    assert "Backtest GBPUSD H1" in first.stdout and "Costs: 0.00014 per round trip" in first.stdout
    assert first.stdout == second.stdout


def test_backtest_refuses_bad_input_clearly(tmp_path: Path) -> None:
    unknown = _backtest("EURUSX")
    assert unknown.returncode == 2 and "did you mean EURUSD" in unknown.stderr
    missing = _backtest("EURUSD", "--csv", "/nonexistent.csv")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    too_many = _backtest("EURUSD", "--bars", "0")
    assert too_many.returncode == 2
    for cost in ("-0.0001", "nan", "inf"):
        refused = _backtest("EURUSD", "--cost", cost)
        assert refused.returncode == 2 and "--cost must be a price difference >= 0" in refused.stderr, cost
    weekly = tmp_path / "weekly.csv"
    weekly.write_text("time,open,high,low,close\n" + "".join(
        f"{1_600_000_000 + i * 7 * 86400},1,1,1,1\n" for i in range(400)), encoding="utf-8")  # fmt: skip
    odd = _backtest("X", "--csv", str(weekly))
    assert odd.returncode == 2 and "cannot tell the timeframe" in odd.stderr and "7 d" in odd.stderr
