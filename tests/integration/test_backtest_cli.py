"""`python -m bot backtest` from outside: the table on the simulated history and on the real EURUSD CSV."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from domain.market.sim import packaged_history

ROOT = Path(__file__).resolve().parents[2]
AGENTS = ("trend", "reversion", "momentum", "breakout", "learner", "consensus", "buy&hold")


def _backtest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "backtest", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def _rows(stdout: str) -> dict[str, list[str]]:
    rows = [line.split() for line in stdout.splitlines()]
    return {row[0]: row for row in rows if len(row) > 2 and row[0] in AGENTS and row[1].lstrip("+-").replace(".", "").isdigit()}


def test_backtest_on_the_real_eurusd_csv() -> None:
    result = _backtest("EURUSD", "--csv", str(packaged_history()))
    assert result.returncode == 0, result.stderr
    assert "2018-02-07 15:00" in result.stdout  # the CSV's last bar
    rows = _rows(result.stdout)
    assert set(rows) == set(AGENTS)
    for agent in AGENTS[:-1]:
        signals, hit = int(rows[agent][1]), float(rows[agent][3])
        low, high = float(rows[agent][4].strip("[,")), float(rows[agent][5].strip("]"))
        assert signals > 0 and low <= hit <= high  # a hit rate with its confidence interval
    assert "30/30" not in result.stderr and "[" in result.stderr  # the progress bar ran


def test_backtest_on_the_simulated_terminal_is_deterministic() -> None:
    first = _backtest("gbpusd", "--bars", "1500", "--seed", "5")
    second = _backtest("GBPUSD", "--bars", "1500", "--seed", "5")
    assert first.returncode == 0, first.stderr
    assert "simulated terminal (seed 5, up to 2026-11-02)" in first.stdout
    assert first.stdout == second.stdout


def test_backtest_refuses_bad_input_clearly() -> None:
    unknown = _backtest("EURUSX")
    assert unknown.returncode == 2 and "did you mean EURUSD" in unknown.stderr
    missing = _backtest("EURUSD", "--csv", "/nonexistent.csv")
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    too_many = _backtest("EURUSD", "--bars", "0")
    assert too_many.returncode == 2
