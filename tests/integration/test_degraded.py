"""Degraded mode on the production stack: Redis restarted, PostgreSQL restarted, the MT5 gateway dropped.

Each test runs the real app (PostgreSQL + Redis servers of its own, started here
because the tests stop and restart them) with its background workers running.
During the outage users get a clear, localized answer with an ErrorDNA code;
once the server is back the same process recovers by itself (no restart), its
workers are still alive, and nothing is lost: an alert added before the outage
still fires after it, exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import asyncpg
import pytest
from redis.asyncio import Redis

from bot import migrate
from bot.settings import Settings
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from domain.ratelimit import Decision
from tests.conftest import require
from tests.fakes.telegram import Call, FakeTelegram
from tests.harness import Harness, build_harness
from tests.servers import (
    Server,
    _as_postgres,
    _pg_bin,
    postgres_missing,
    redis_missing,
    start_postgres,
    start_redis,
)

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday: FX markets open
_names = itertools.count(1)


class Unlimited:
    async def hit(self, key: str, rate_per_minute: int, burst: int) -> Decision:
        return Decision(True)


# ---- servers we may stop and start again ----


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


def _wait_port(port: int, up: bool, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                if up:
                    return
        except OSError:
            if not up:
                return
        time.sleep(0.05)
    raise AssertionError(f"port {port} never went {'up' if up else 'down'}")


def pg_stop(server: Server) -> None:
    subprocess.run(server.stop_cmd, check=True, capture_output=True)
    _wait_port(_port(server.url), up=False)


def pg_start(server: Server) -> None:
    port = _port(server.url)
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {server.directory} -c fsync=off -c full_page_writes=off"
    data, log = str(server.directory / "data"), str(server.directory / "log")
    subprocess.run(
        _as_postgres([_pg_bin("pg_ctl") or "pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "start"]),
        check=True, capture_output=True,
    )  # fmt: skip
    _wait_port(port, up=True)


def redis_stop(server: Server) -> None:
    assert server.process is not None
    server.process.kill()  # a crash, not a polite shutdown
    server.process.wait(10)
    _wait_port(_port(server.url), up=False)


def redis_start(server: Server) -> None:
    port = _port(server.url)
    server.process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(server.directory)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_port(port, up=True)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[Server, Server]]:
    require(postgres_missing() or redis_missing())
    pg, redis = start_postgres(), start_redis()
    try:
        yield pg, redis
    finally:
        redis.stop()
        pg.stop()


async def _sql(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def degraded(
    servers: tuple[Server, Server], telegram: FakeTelegram, tmp_path: os.PathLike[str]
) -> AsyncIterator[Harness]:
    pg, redis = servers
    name = f"deg_{os.getpid()}_{next(_names)}"
    await _sql(pg.url, f"CREATE DATABASE {name}")
    url = pg.url.rsplit("/", 1)[0] + "/" + name
    await migrate.upgrade_async(url)
    client = Redis.from_url(redis.url)
    await client.flushdb()
    await client.aclose()
    settings = Settings(database_url=url, redis_url=redis.url, data_dir=tmp_path, secret_key="test-secret")
    h = await build_harness(settings, telegram, limiter=Unlimited())
    h.deliver_outbox = False  # the app's own outbox sender delivers, as in production
    clock = ManualClock(START)
    h.app.market.hub.use_clock(clock)
    h.clock = clock  # type: ignore[attr-defined]
    h.app.start_background(h.bot)  # the real workers run through the outage
    try:
        yield h
    finally:
        await h.close()
        await _sql(pg.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# ---- helpers ----


def _alerts(h: Harness) -> list[Call]:
    return [c for c in h.telegram.sent() if re.search(r"#\d+: EURUSD</b>", c.text)]  # the fired alert, any language


async def _add_alert(h: Harness, user: int) -> None:
    price = (await h.app.market.hub.tick("EURUSD")).bid
    calls = await h.send(f"/alerts add EURUSD > {round(price + 0.0004, 5)}", user=user)
    assert "#" in calls[0].text, calls[0].text


async def _fire(h: Harness) -> list[Call]:
    """Move the market until the alert fires (the background evaluator delivers it)."""
    clock: ManualClock = h.clock  # type: ignore[attr-defined]
    runtime = h.app.market
    for _ in range(2000):
        clock.advance(5)
        await runtime.feed.poll_once()
        await asyncio.sleep(0)
        if runtime.evaluator.pending or _alerts(h):
            break
    for _ in range(200):  # the evaluator task persists it into the outbox; the outbox sender delivers it
        if _alerts(h):
            break
        await asyncio.sleep(0.05)
    return _alerts(h)


async def _eventually(h: Harness, text: str, user: int, lang: str, wanted: str, timeout: float = 20.0) -> str:
    """Send until the answer contains ``wanted`` (the app recovers on its own, without a restart)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        calls = await h.send(text, user=user, lang=lang)
        last = calls[0].text if calls else ""
        if wanted in last:
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"never recovered; last answer: {last!r}")


def _workers_alive(h: Harness) -> None:
    dead = [t.get_name() for t in h.app.tasks if t.done()]
    assert not dead, f"background tasks died: {dead}"


# ---- the outages ----


async def test_redis_restarted_mid_run(degraded: Harness, servers: tuple[Server, Server]) -> None:
    h, redis = degraded, servers[1]
    assert "Добро пожаловать" in (await h.send("/start", user=71, lang="ru"))[0].text
    await _add_alert(h, 71)
    redis_stop(redis)
    try:
        down = await h.send("/help", user=71, lang="ru")
        assert len(down) == 1
        assert "Наш кэш ненадолго недоступен" in down[0].text and "SYS-REDIS" in down[0].text
        es = await h.send("/status", user=72, lang="es")
        assert "Nuestra caché no está disponible" in es[0].text and "SYS-REDIS" in es[0].text
        await h.app.market.feed.poll_once()  # the market feed keeps going without Redis
    finally:
        redis_start(redis)
    await _eventually(h, "/help", 71, "ru", "Что я умею")
    assert "Redis" in await _eventually(h, "/status", 72, "es", "Estado del sistema")
    fired = await _fire(h)
    assert len(fired) == 1 and fired[0].params["chat_id"] in (71, "71")
    _workers_alive(h)


async def test_postgres_restarted_mid_run(degraded: Harness, servers: tuple[Server, Server]) -> None:
    h, pg = degraded, servers[0]
    assert "Bienvenido" in (await h.send("/start", user=81, lang="es"))[0].text
    await _add_alert(h, 81)
    async with UnitOfWork(h.app.sessionmaker) as uow:  # user 82 arrives during the outage, disclosure accepted
        await h.app.compliance.accept_all(uow, 82)
    h._onboarded_ids.add(82)
    pg_stop(pg)
    try:
        down = await h.send("/alerts", user=81, lang="es")
        assert len(down) == 1
        assert "Nuestra base de datos no está disponible" in down[0].text and "SYS-DB" in down[0].text
        new_user = await h.send("/start", user=82, lang="ru")  # not cached: needs the database at once
        assert "Наша база данных ненадолго недоступна" in new_user[0].text and "SYS-DB" in new_user[0].text
        await asyncio.sleep(1.2)  # the workers meet the outage too
    finally:
        pg_start(pg)
    listed = await _eventually(h, "/alerts", 81, "es", "EURUSD")
    assert "EURUSD" in listed
    assert "Добро пожаловать" in await _eventually(h, "/start", 82, "ru", "Добро пожаловать")
    fired = await _fire(h)
    assert len(fired) == 1 and fired[0].params["chat_id"] in (81, "81")
    _workers_alive(h)


async def test_gateway_dropped(degraded: Harness) -> None:
    h = degraded
    await h.send("/start", user=91, lang="es")
    await _add_alert(h, 91)
    terminal = h.app.market.hub.terminal
    terminal.inject("disconnect", None, seconds=24 * 3600)
    down = await h.send("/price EURUSD", user=91, lang="es")
    assert "El servidor de trading no está disponible" in down[0].text and "MKT-UNAVAILABLE" in down[0].text
    status = await h.send("/status", user=91, lang="ru")
    assert "Шлюз MT5: не отвечает" in status[0].text
    await asyncio.sleep(1.2)  # the feed meets the outage and backs off
    assert not _alerts(h)
    terminal.clear_faults()
    price = await _eventually(h, "/price EURUSD", 91, "es", "EURUSD")
    assert "MKT-" not in price
    fired = await _fire(h)
    assert len(fired) == 1
    _workers_alive(h)
