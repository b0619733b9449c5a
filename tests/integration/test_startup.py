"""Start-up stays light: building `run`'s app loads none of the heavy modules, and /metrics shows the GC gauge.

Heavy modules (charts, the Stripe SDK, Sentry, the scheduler) load when first used, or only in the
process that needs them; a fresh interpreter checks ``sys.modules`` after building the app as
``python -m bot run`` does. (No wall-clock threshold: bench/startup.py prints the times.)
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import aiohttp

from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("matplotlib", "PIL", "stripe", "requests", "sentry_sdk", "apscheduler", "multiprocessing", "alembic", "mako")

BUILD_RUN = """
import asyncio, json, sys
from pathlib import Path
from bot.runner import run  # the composition root of `python -m bot run`
from bot.app import create_app, create_bot
from bot.settings import Settings
from bot.web.app import create_web_app

async def build() -> None:
    settings = Settings()
    app = await create_app(settings)
    bot = create_bot(settings)
    create_web_app(app, bot, webhook_secret="s3cret", webhook=True)
    await app.close()
    await bot.session.close()

asyncio.run(build())
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in {heavy})))
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WEBHOOK_", "DATABASE_", "REDIS_", "SENTRY_", "STRIPE_"))}
    env.update(DATA_DIR=str(tmp_path / "var"), BOT_TOKEN=TOKEN, **extra)
    return env


async def test_building_the_run_app_loads_no_heavy_module(tmp_path: Path) -> None:
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "migrate", cwd=ROOT, env=_env(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert await asyncio.wait_for(migrate.wait(), 120) == 0  # a restart: alembic is for migrating only
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", BUILD_RUN.replace("{heavy}", repr(set(HEAVY))), cwd=ROOT, env=_env(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    loaded = json.loads(out.decode().strip().splitlines()[-1])
    assert loaded == [], f"loaded at start-up: {loaded}"


async def test_run_exposes_the_worst_recent_gc_pause(telegram: FakeTelegram, tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, TELEGRAM_API_URL=telegram.url, WEB_PORT=str(port), LOG_LEVEL="INFO")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with aiohttp.ClientSession() as http:
            text = ""
            for _ in range(600):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                        text = await resp.text()
                        if "hybrid_gc_pause_max_seconds " in text:  # registered once start-up settled
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        gauge = [line for line in text.splitlines() if line.startswith("hybrid_gc_pause_max_seconds ")]
        assert len(gauge) == 1, text
        assert float(gauge[0].split()[1]) >= 0.0
        assert "# HELP hybrid_gc_pause_max_seconds Longest full (generation 2) garbage collection" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        output = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
    assert proc.returncode == 0, output
