"""A demo trade end to end in `python -m bot console`, as a real process, then again after a restart."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WEBHOOK_", "DATABASE_", "REDIS_"))}
    env.update(DATA_DIR=str(tmp_path / "var"), LOG_LEVEL="WARNING", PYTHONUNBUFFERED="1")
    return env


async def _console(tmp_path: Path, script: str, lang: str = "en") -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "console", "--lang", lang, cwd=ROOT, env=_env(tmp_path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output = (await asyncio.wait_for(proc.communicate(script.encode()), 90))[0].decode()
    assert proc.returncode == 0, output
    return output


async def test_console_demo_trade_survives_restart(tmp_path: Path) -> None:
    # BTCUSD trades around the clock in the simulator, so this holds on weekends too
    # prices answer at once, marked as simulated; the first order asks for the risk disclosure, and accepting it
    # ("1") shows the order's preview straight away, whose Confirm is the next "1"
    out = await _console(tmp_path, "/price BTCUSD\n/trade buy BTCUSD 0.01\n1\n1\n/positions\n/chart BTCUSD H1\n")
    assert "Simulated prices from the built-in simulator" in out
    assert out.count("Please read before trading") == 1
    assert "Order preview" in out and "[1] ✅ Confirm" in out
    assert "Order placed" in out and "Broker: done (10009)" in out
    assert "BTCUSD BUY 0.01" in out
    assert list((tmp_path / "var" / "console").glob("*.png"))
    again = await _console(tmp_path, "/positions\n/balance\n", lang="es")
    assert "BTCUSD BUY 0.01" in again and "Posiciones abiertas" in again and "Saldo" in again
