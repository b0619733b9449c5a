"""The run contract from outside: `python -m bot run` and `console` as real processes.

The bot talks to the fake Bot API server through TELEGRAM_API_URL exactly as it
would to a self-hosted Bot API server.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.fakes.telegram import TOKEN, Call, FakeTelegram
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
_ids = itertools.count(1)


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WEBHOOK_", "DATABASE_", "REDIS_"))}
    env.update(DATA_DIR=str(tmp_path / "var"), LOG_LEVEL="INFO", PYTHONUNBUFFERED="1", **extra)
    return env


def _update(user: int, lang: str, text: str) -> dict[str, object]:
    return {
        "update_id": next(_ids),
        "message": {
            "message_id": next(_ids),
            "date": int(time.time()),
            "chat": {"id": user, "type": "private"},
            "from": {"id": user, "is_bot": False, "first_name": "Eva", "language_code": lang},
            "text": text,
        },
    }


async def _wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting for the bot")


async def _healthy(port: int, timeout: float = 30.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return dict(await resp.json())
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("/healthz never answered")


@pytest.fixture
async def bot_process(telegram: FakeTelegram, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[int]:
    port = free_port()
    extra = getattr(request, "param", {})
    env = _env(tmp_path, BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url, WEB_PORT=str(port), **extra)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        await _healthy(port)
        yield port
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        output = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
        assert proc.returncode == 0, output
        assert "Hybrid Trader ready" in output


WANTED = {
    "en": ("Welcome, Eva", "<b>📖 What I can do", "<b>🩺 System status", "<b>⚙️ Settings"),
    "ru": ("Добро пожаловать, Eva", "<b>📖 Что я умею", "<b>🩺 Состояние системы", "<b>⚙️ Настройки"),
    "es": ("Bienvenido, Eva", "<b>📖 Lo que puedo hacer", "<b>🩺 Estado del sistema", "<b>⚙️ Ajustes"),
}


def _texts(calls: list[Call], chat: int) -> list[str]:
    return [c.text for c in calls if c.method == "sendMessage" and str(c.params.get("chat_id")) == str(chat)]


async def test_polling_answers_core_commands_in_three_languages(telegram: FakeTelegram, bot_process: int) -> None:
    for user, lang in ((501, "en"), (502, "ru"), (503, "es")):
        for text in ("/start", "/help", "/status", "/config"):
            await telegram.updates.put(_update(user, lang, text))
    await _wait_for(lambda: all(len(_texts(telegram.calls, u)) == 4 for u in (501, 502, 503)))
    for user, lang in ((501, "en"), (502, "ru"), (503, "es")):
        texts = _texts(telegram.calls, user)  # polling handles updates concurrently: any order
        for wanted in WANTED[lang]:
            assert sum(wanted in got for got in texts) == 1, (wanted, texts)
    menus = {c.params.get("language_code"): c.params["commands"] for c in telegram.sent("setMyCommands")}
    assert set(menus) == {None, "ru", "es"}
    assert {"command": "status", "description": "Состояние системы и ваши лимиты"} in menus["ru"]
    assert telegram.sent("deleteWebhook")


@pytest.mark.parametrize(
    "bot_process", [{"WEBHOOK_URL": "https://bot.example.test", "WEBHOOK_SECRET": "s3cret-token"}], indirect=True
)
async def test_webhook_mode_checks_the_secret(telegram: FakeTelegram, bot_process: int) -> None:
    webhook = telegram.sent("setWebhook")[0].params
    assert webhook["url"] == "https://bot.example.test/webhooks/telegram"
    assert webhook["secret_token"] == "s3cret-token"
    url = f"http://127.0.0.1:{bot_process}/webhooks/telegram"
    async with aiohttp.ClientSession() as http:
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}):
            async with http.post(url, json=_update(601, "en", "/start"), headers=headers) as resp:
                assert resp.status == 401
        async with http.post(
            url, json=_update(601, "es", "/start"), headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-token"}
        ) as resp:
            assert resp.status == 200
    await _wait_for(lambda: len(_texts(telegram.calls, 601)) == 1)
    assert "Bienvenido, Eva" in _texts(telegram.calls, 601)[0]


@pytest.mark.parametrize(
    "bot_process", [{"WEBHOOK_URL": "https://bot.example.test", "WEBHOOK_SECRET": "s3cret-token"}], indirect=True
)
async def test_webhook_secret_header_with_foreign_bytes_is_refused_not_crashed(
    telegram: FakeTelegram, bot_process: int
) -> None:
    url = f"http://127.0.0.1:{bot_process}/webhooks/telegram"
    async with aiohttp.ClientSession() as http:
        for value in ("s3cret-tokén", "ßßß", "s3cret-token\u00a0"):
            raw = {"X-Telegram-Bot-Api-Secret-Token": value.encode().decode("latin-1")}  # non-ASCII bytes on the wire
            async with http.post(url, json=_update(602, "en", "/start"), headers=raw) as resp:
                assert resp.status == 401, value
    assert _texts(telegram.calls, 602) == []


@pytest.mark.parametrize("secret", [None, "", "has space", "x" * 257])
async def test_webhook_mode_without_a_valid_secret_refuses_to_start(
    telegram: FakeTelegram, tmp_path: Path, secret: str | None
) -> None:
    """Without WEBHOOK_SECRET anyone could post a forged update (an admin's `/grant 3003 enterprise 3650`)."""
    extra = {"WEBHOOK_URL": "https://bot.example.test"} | ({"WEBHOOK_SECRET": secret} if secret is not None else {})
    env = _env(tmp_path, BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url, WEB_PORT=str(free_port()), **extra)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 2, output
    assert "WEBHOOK_SECRET" in output and "Hybrid Trader ready" not in output
    assert telegram.sent("setWebhook") == [] and telegram.sent("getMe") == []


async def test_run_without_token_explains_how_to_get_one(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "run", cwd=ROOT, env=_env(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
    assert proc.returncode == 2
    assert "@BotFather" in output and "python -m bot console" in output


async def test_console_is_the_real_bot_offline(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "console", "--lang", "es", cwd=ROOT, env=_env(tmp_path),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    script = "/start\n3\n1\n3\n/status\n"  # menu → Ajustes → Idioma → Español… then English
    output = (await asyncio.wait_for(proc.communicate(script.replace("1\n3\n", "1\n1\n").encode()), 60))[0].decode()
    assert proc.returncode == 0, output
    assert "¡Bienvenido, Trader!" in output
    assert "[3] ⚙️ Ajustes" in output
    assert "Elige tu idioma:" in output
    assert "Language: English" in output  # pressed [1] English: the reply switched language
    assert "System status" in output and "SQLite" in output
    assert (tmp_path / "var" / "hybrid.db").exists()
