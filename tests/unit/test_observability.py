"""Observability: Sentry tags, JSON log lines, and the one set of ops figures /metrics, /status and /admin show."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sentry_sdk
from aiohttp.test_utils import TestClient, TestServer
from sentry_sdk.transport import Transport

from bot.observability import JsonFormatter, OpsMonitor, init_sentry, sentry_integrations, wants_json
from bot.settings import Settings
from bot.web.app import create_web_app
from domain.db.models import BroadcastRow, OutboxRow
from domain.db.uow import UnitOfWork
from tests.fakes.telegram import FakeTelegram
from tests.harness import Harness, build_harness

ADMIN = 4242


class Captured(Transport):
    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def capture_envelope(self, envelope: Any) -> None:
        event = envelope.get_event()
        if event is not None:
            self.events.append(event)


@pytest.fixture
def sentry() -> Iterator[Captured]:
    transport = Captured()
    init_sentry("http://public@127.0.0.1:9/1", release="hybrid-trader@test", transport=transport)
    yield transport
    sentry_sdk.init()  # a client without a DSN: nothing is sent by later tests


@pytest.fixture
async def staffed(stack: Settings, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    h = await build_harness(stack.model_copy(update={"admin_ids": frozenset({ADMIN})}), telegram)
    yield h
    await h.close()


def test_sentry_has_the_aiohttp_asyncio_and_sqlalchemy_integrations() -> None:
    names = {type(i).__name__ for i in sentry_integrations()}
    assert names == {"AioHttpIntegration", "AsyncioIntegration", "SqlalchemyIntegration"}


def test_log_format_is_chosen_by_env() -> None:
    assert wants_json("json", interactive=True) and not wants_json("text", interactive=False)
    assert wants_json("auto", interactive=False) and not wants_json("auto", interactive=True)
    assert Settings(log_format="json").log_format == "json"
    with pytest.raises(ValueError):
        Settings(log_format="xml")


async def test_a_bug_reaches_sentry_tagged_with_hashed_user_tier_and_code(harness: Harness, sentry: Captured) -> None:
    async def broken() -> list[Any]:
        raise RuntimeError("probe table exploded")

    harness.app.health.check = broken  # type: ignore[method-assign]
    calls = await harness.send("/status", user=777001, lang="ru")
    assert "Код BUG-" in calls[0].text  # the user still gets a localized answer with the code
    sentry_sdk.flush()
    [event] = [e for e in sentry.events if e.get("exception")]
    tags = event["tags"]
    assert tags["error_dna"].startswith("BUG-") and tags["error_dna"] in calls[0].text
    assert tags["tier"] == "free"
    assert tags["user_hash"] and event["user"] == {"id": tags["user_hash"]}
    assert tags["update_id"].isdigit()
    for frame in event["exception"]["values"][0]["stacktrace"]["frames"]:
        assert "vars" not in frame  # frame locals hold ids, names and message texts
        for key in ("pre_context", "context_line", "post_context"):  # source lines (this test's own literals)
            frame.pop(key, None)
    assert "777001" not in json.dumps(event, default=str)  # the raw Telegram id never leaves the process


async def test_expected_domain_errors_do_not_reach_sentry(harness: Harness, sentry: Captured) -> None:
    await harness.press("cfg:setlang:xx")
    sentry_sdk.flush()
    assert not [e for e in sentry.events if e.get("exception")]


async def test_json_log_line_carries_update_user_hash_and_tier(harness: Harness) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("hybrid.errors")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        await harness.press("cfg:notify:bogus", user=31338)
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["tier"] == "free" and isinstance(line["update_id"], int) and line["user"]
    assert "31338" not in json.dumps(line)


async def _metrics(harness: Harness) -> str:
    async with TestClient(TestServer(create_web_app(harness.app, harness.bot))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        return await response.text()


async def _queue_broadcast(harness: Harness, users: int, age: timedelta) -> None:
    at = datetime.now(UTC) - age
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        row = BroadcastRow(admin_id=1, text="hi", segment={}, status="sending", created_at=at)
        uow.session.add(row)
        await uow.session.flush()
        uow.session.add_all(
            OutboxRow(broadcast_id=row.id, user_id=9000 + i, status="pending", updated_at=at) for i in range(users)
        )
        uow.session.add(OutboxRow(broadcast_id=row.id, user_id=8999, status="sent", updated_at=at))
        await uow.commit()


def _sample(text: str, name: str) -> float:
    [line] = [x for x in text.splitlines() if x.startswith(name + " ")]
    return float(line.split()[-1])


async def test_metrics_export_outbox_feed_gateway_and_active_users(harness: Harness) -> None:
    await harness.send("/help", user=5001)
    await harness.send("/help", user=5002)
    await _queue_broadcast(harness, 3, timedelta(minutes=5))
    text = await _metrics(harness)
    assert _sample(text, 'hybrid_outbox_depth{outbox="broadcast"}') == 3
    assert 290 <= _sample(text, 'hybrid_outbox_lag_seconds{outbox="broadcast"}') <= 400
    assert _sample(text, 'hybrid_active_users{window="1h"}') == 2
    assert _sample(text, 'hybrid_active_users{window="24h"}') == 2
    assert _sample(text, "hybrid_gateway_up") == 1
    assert 0 < _sample(text, "hybrid_gateway_latency_seconds") < 10
    assert "hybrid_tick_rate " in text


async def test_status_and_admin_show_the_figures_metrics_exports(staffed: Harness) -> None:
    h = staffed
    await h.send("/start", user=ADMIN)
    await _queue_broadcast(h, 2, timedelta(hours=2))
    h.app.market.hub.tick_rate = 12.5
    status = (await h.send("/status", user=ADMIN, lang="es"))[0].text
    assert "Flujo de mercado: 12.5 ticks/s" in status
    assert "Cola de notificaciones: 2 en espera, la más antigua 2 h 0 min" in status
    assert "Usuarios activos: 1 en la última hora · 1 en 24 horas" in status
    assert "Ping de la pasarela MT5:" in status
    admin = (await h.send("/admin", user=ADMIN))[0].text
    assert "<b>Operations</b>" in admin
    assert "Notification queue: 2 waiting, oldest 2 h 0 min" in admin
    assert "Market feed: 12.5 ticks/s" in admin
    figures = await h.app.ops.figures()  # one source: the same snapshot /metrics exports
    text = await _metrics(h)
    assert _sample(text, 'hybrid_outbox_depth{outbox="broadcast"}') == figures.outbox_depth == 2
    assert _sample(text, "hybrid_tick_rate") == figures.tick_rate == 12.5


async def test_status_says_when_the_gateway_is_down(harness: Harness) -> None:
    harness.app.market.hub.terminal.inject("disconnect", None, seconds=3600)
    text = (await harness.send("/status", lang="ru"))[0].text
    assert "Шлюз MT5: не отвечает" in text
    assert "❌" in text


async def test_figures_survive_a_database_outage(harness: Harness) -> None:
    monitor: OpsMonitor = harness.app.ops
    await _queue_broadcast(harness, 1, timedelta(seconds=30))
    first = await monitor.figures()

    class Down:
        def __call__(self) -> Any:
            raise OSError("connection refused")

    monitor._sessionmaker = Down()  # type: ignore[assignment]
    monitor._last = None
    second = await monitor.figures()
    assert second.outbox_depth == first.outbox_depth == 1


async def test_a_refused_database_connection_is_sys_db_and_other_os_errors_are_bugs() -> None:
    import asyncpg

    from bot.errors import dna
    from tests.servers import free_port

    with pytest.raises(OSError) as refused:
        await asyncpg.connect(host="127.0.0.1", port=free_port(), user="nobody", timeout=5)
    assert dna(refused.value) == "SYS-DB"
    try:
        raise ConnectionRefusedError("our own socket")
    except OSError as exc:
        assert dna(exc).startswith("BUG-")


async def test_updates_beyond_the_concurrency_limit_wait_their_turn() -> None:
    import asyncio

    from aiogram.types import Chat, Message, Update

    from bot.errors import dna
    from bot.observability import Metrics, ObservabilityMiddleware
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    metrics = Metrics()
    middleware = ObservabilityMiddleware(metrics, b"salt", limit=2)
    running, peak = 0, 0
    gate = asyncio.Event()

    async def handler(event: Any, data: dict[str, Any]) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gate.wait()
        running -= 1
        return "done"

    def update(i: int) -> Update:
        return Update(update_id=i, message=Message(message_id=i, date=datetime.now(UTC), chat=Chat(id=1, type="private")))

    tasks = [asyncio.create_task(middleware(handler, update(i), {})) for i in range(5)]
    await asyncio.sleep(0.01)
    assert peak == 2 and metrics.waiting._value.get() == 3 and metrics.in_flight._value.get() == 2
    gate.set()
    assert await asyncio.gather(*tasks) == ["done"] * 5
    assert peak == 2 and metrics.in_flight._value.get() == 0 and metrics.waiting._value.get() == 0
    assert dna(PoolTimeout("QueuePool limit reached")) == "SYS-DB"  # an exhausted pool is the database's answer
