"""Two bot replicas in webhook mode on one PostgreSQL and one Redis, as behind a load balancer.

Each replica is a full App with its own web server; the updates travel as real
HTTP POSTs to /webhooks/telegram. The same update delivered to both replicas is
handled once; a conversation (FSM state, buttons) may hop between replicas.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web

from bot.app import App, create_app, create_bot
from bot.settings import Settings
from bot.views.feedback import FeedbackCB
from bot.web.app import TELEGRAM_WEBHOOK_PATH, create_web_app
from tests.fakes import serve_on_loopback
from tests.fakes.telegram import TOKEN, FakeTelegram

pytestmark = pytest.mark.integration

SECRET = "replica-secret"
_ids = itertools.count(500_000)


@dataclass
class Replica:
    app: App
    bot: Bot
    runner: web.AppRunner
    url: str


@pytest.fixture
async def replicas(pg_url: str, redis_url: str, telegram: FakeTelegram, tmp_path: Any) -> AsyncIterator[list[Replica]]:
    settings = Settings(
        database_url=pg_url, redis_url=redis_url, data_dir=tmp_path, secret_key="test-secret",
        webhook_url="https://bot.example.test", webhook_secret=SECRET, workers="external",
    )  # fmt: skip
    out: list[Replica] = []
    try:
        for _ in range(2):
            app = await create_app(settings)
            bot = create_bot(settings, session=AiohttpSession(api=TelegramAPIServer.from_base(telegram.url)), token=TOKEN)
            runner, url = await serve_on_loopback(create_web_app(app, bot, webhook_secret=SECRET, webhook=True))
            out.append(Replica(app, bot, runner, url))
        yield out
    finally:
        for r in out:
            await r.runner.cleanup()
            await r.app.close()
            await r.bot.session.close()


def _message(user: int, text: str, lang: str = "en") -> dict[str, Any]:
    return {
        "update_id": next(_ids),
        "message": {
            "message_id": next(_ids), "date": int(time.time()), "chat": {"id": user, "type": "private"},
            "from": {"id": user, "is_bot": False, "first_name": "Eva", "language_code": lang}, "text": text,
        },
    }  # fmt: skip


def _press(user: int, data: str, lang: str = "en") -> dict[str, Any]:
    return {
        "update_id": next(_ids),
        "callback_query": {
            "id": str(next(_ids)), "chat_instance": "ci", "data": data,
            "from": {"id": user, "is_bot": False, "first_name": "Eva", "language_code": lang},
            "message": {"message_id": 7, "date": int(time.time()), "chat": {"id": user, "type": "private"}, "text": "…"},
        },
    }  # fmt: skip


async def _post(http: aiohttp.ClientSession, replica: Replica, update: dict[str, Any]) -> int:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    async with http.post(replica.url + TELEGRAM_WEBHOOK_PATH, json=update, headers=headers) as resp:
        return resp.status


async def test_the_same_update_on_two_replicas_is_handled_once(replicas: list[Replica], telegram: FakeTelegram) -> None:
    a, b = replicas
    async with aiohttp.ClientSession() as http:
        # at the same time (a retried delivery racing the first one)...
        update = _message(4101, "/start", "es")
        statuses = await asyncio.gather(_post(http, a, update), _post(http, b, update))
        assert statuses == [200, 200]
        # ...and later (a redelivery after the first was answered)
        assert await _post(http, b, update) == 200
        other = _message(4102, "/help")
        assert await asyncio.gather(_post(http, b, other), _post(http, a, other)) == [200, 200]
    welcomes = [c for c in telegram.sent() if c.params.get("chat_id") in (4101, "4101")]
    assert len(welcomes) == 1 and "Bienvenido, Eva" in welcomes[0].text
    helps = [c for c in telegram.sent() if c.params.get("chat_id") in (4102, "4102")]
    assert len(helps) == 1
    handled = sum(r.app.metrics.total(r.app.metrics.updates) for r in replicas)
    assert handled == 5  # every POST reached a dispatcher; duplicates stopped at the de-duplication step


async def test_a_conversation_hops_between_replicas(replicas: list[Replica], telegram: FakeTelegram) -> None:
    a, b = replicas
    async with aiohttp.ClientSession() as http:
        assert await _post(http, a, _message(4201, "/feedback", "es")) == 200
        assert await _post(http, b, _press(4201, FeedbackCB(action="rate", value=4).pack(), "es")) == 200
        assert await _post(http, a, _message(4201, "muy bien", "es")) == 200  # FSM state lives in Redis
    texts = [c.text for c in telegram.sent() if c.params.get("chat_id") in (4201, "4201")]
    assert any("Gracias por tu valoración" in t for t in texts), texts


async def test_a_profile_change_on_one_replica_shows_on_the_other_at_once(
    replicas: list[Replica], telegram: FakeTelegram
) -> None:
    from bot.views.settings import ConfigCB

    a, b = replicas
    syncs = [r.app.user_sync for r in replicas]
    assert all(s is not None for s in syncs)
    tasks = [asyncio.create_task(s.run()) for s in syncs]  # type: ignore[union-attr]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.subscribed.wait() for s in syncs)), 10)  # type: ignore[union-attr]
        async with aiohttp.ClientSession() as http:
            assert await _post(http, b, _message(4301, "/help")) == 200  # B caches the profile (English)
            assert await _post(http, a, _press(4301, ConfigCB(action="setlang", value="es").pack())) == 200
            await a.app.user_sync.published()  # type: ignore[union-attr]
            for _ in range(200):  # the notice crosses Redis
                if b.app.user_sync.dropped:  # type: ignore[union-attr]
                    break
                await asyncio.sleep(0.02)
            assert await _post(http, b, _message(4301, "/help")) == 200
        helps = [c.text for c in telegram.sent()
                 if c.method == "sendMessage" and c.params.get("chat_id") in (4301, "4301")]  # fmt: skip
        assert len(helps) == 2 and "What I can do" in helps[0]
        assert "Lo que puedo hacer" in helps[1]  # Spanish at once, not after the 30 s cache TTL
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
