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


REFUSE = """
import json, sys
from bot.__main__ import main

code = main(sys.argv[1:])
print(json.dumps([code, sorted(set(sys.modules) & {heavy})]))
"""
BEFORE_REFUSAL = ("aiogram", "aiohttp", "sqlalchemy", "redis", "asyncpg", "numpy", "bot.app")


async def test_a_configuration_refusal_comes_before_the_heavy_imports(tmp_path: Path) -> None:
    """`run` and `worker` refuse a bad configuration from the settings alone: no aiogram, no database,
    no Redis client is loaded (so nothing is connected), and the message and exit code stay the same."""
    cases: list[tuple[str, dict[str, str], str]] = [
        ("worker", {"BOT_TOKEN": ""}, "BOT_TOKEN"),
        ("worker", {}, "REDIS_URL"),
        ("worker", {"REDIS_URL": "redis://127.0.0.1:1/0"}, "SECRET_KEY"),
        ("run", {"WORKERS": "external"}, "WORKERS=external: The worker and the bot replicas share"),
        ("run", {"WORKERS": "external", "REDIS_URL": "redis://127.0.0.1:1/0"}, "SECRET_KEY"),
        ("run", {"WEBHOOK_URL": "https://bot.example.test"}, "WEBHOOK_URL is set but WEBHOOK_SECRET is not"),
        ("run", {"WEBHOOK_URL": "https://bot.example.test", "WEBHOOK_SECRET": "has space"}, "may only hold"),
        ("run", {"BOT_TOKEN": ""}, "@BotFather"),
    ]
    for verb, extra, message in cases:
        env = _env(tmp_path, DATABASE_URL="postgresql+asyncpg://nobody@127.0.0.1:1/none")
        env.update(extra)
        if not env["BOT_TOKEN"]:  # unset
            del env["BOT_TOKEN"]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", REFUSE.replace("{heavy}", repr(set(BEFORE_REFUSAL))), verb, cwd=ROOT, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        text = out.decode()
        assert message in text, (verb, extra, text)
        assert json.loads(text.strip().splitlines()[-1]) == [2, []], (verb, extra, text)
