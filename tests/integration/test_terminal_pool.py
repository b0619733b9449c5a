"""The terminal pool end to end: three real ``bridge_server --sim`` processes, one terminal each.

Three users link three live accounts at the same time and trade at the same moment; each order lands in
its own account on its own terminal and nowhere else; a fourth link is refused with the localized "no free
terminal" message; unlinking frees a terminal for the fourth user. Once through the real Dispatcher in
this process (both stacks), once through two ``python -m bot run`` processes (webhook mode,
WORKERS=external) on PostgreSQL + Redis with every update alternating between them.

Every bridge knows every account (like a broker's terminals: any can log in to any account), and each
simulates its own trade server, so a position shows up exactly where an order was executed. Run with
``-s`` to see the link time and the order latency through the pool.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot.settings import Settings
from domain.db.engine import create_engine, create_sessionmaker
from domain.db.models import ErrorEventRow, TerminalRow
from domain.market.bridge import BridgeGateway
from tests.fakes.telegram import TOKEN, Call, FakeTelegram
from tests.harness import Harness, build_harness
from tests.servers import Bridge, free_port, start_bridge

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SECRET = "pool-test-bridge-secret"
WEBHOOK_SECRET = "pool-webhook-secret"
SERVER = "Broker-Live"
ACCOUNTS = [(61_000_001, "Pass-One-1"), (61_000_002, "Pass-Two-2"), (61_000_003, "Pass-Three-3"),
            (61_000_004, "Pass-Four-4")]  # fmt: skip
USERS = [3101, 3102, 3103, 3104]
SYMBOL = "BTCUSD"  # open every day: the bridges run on the wall clock
_ids = itertools.count(700_000)


@dataclass
class Pool:
    data: Bridge  # the market-data terminal (MT5_RPYC_HOST/PORT)
    terminals: list[Bridge]  # MT5_RPYC_POOL

    @property
    def endpoints(self) -> str:
        return ",".join(b.endpoint for b in self.terminals)


@pytest.fixture
def pool(tmp_path: Path) -> Iterator[Pool]:
    everyone = [(login, password, SERVER) for login, password in ACCOUNTS]
    started: list[Bridge] = []
    try:
        for _ in range(4):
            started.append(start_bridge(everyone, SECRET, log=tmp_path / "bridges.log"))
        yield Pool(started[0], started[1:])
    finally:
        for bridge in started:
            bridge.stop()


async def _positions(pool: Pool) -> dict[tuple[str, int], list[str]]:
    """Every account on every terminal: the comments (order ids) of its open positions."""
    out: dict[tuple[str, int], list[str]] = {}
    for bridge in pool.terminals:
        for login, password in ACCOUNTS:
            gw = BridgeGateway("127.0.0.1", bridge.port, login=login, password=password, server=SERVER, timeout=10,
                               retries=2, backoff=0.1, secret=SECRET)  # fmt: skip
            try:
                await gw.connect()
                out[(bridge.endpoint, login)] = sorted(p.comment for p in await gw.positions())
            finally:
                gw._client.shutdown_on_close = False
                await gw.close()
    return out


async def _leases(db_url: str) -> dict[int, str]:
    engine = create_engine(db_url)
    try:
        async with create_sessionmaker(engine)() as s:
            rows = await s.scalars(select(TerminalRow).where(TerminalRow.login.is_not(None)))
            return {int(r.login): r.endpoint for r in rows}  # type: ignore[arg-type]
    finally:
        await engine.dispose()


async def _prepare_users(db_url: str, users: list[int]) -> None:
    """The users exist on a plan with live trading and have accepted the risk disclosure before their first update."""
    from domain.compliance import ComplianceService
    from domain.db.uow import UnitOfWork
    from tests.stores import seed_users

    engine = create_engine(db_url)
    sm = create_sessionmaker(engine)
    try:
        # the fourth user tries three times in a row: Pro's burst (30 updates) covers it, Basic's (15) would not
        await seed_users(sm, {uid: "pro" if uid == users[-1] else "basic" for uid in users}, datetime.now(UTC))
        for uid in users:
            async with UnitOfWork(sm) as uow:
                await ComplianceService().accept_all(uow, uid)
    finally:
        await engine.dispose()


# ---- a chat transport: the in-process Dispatcher, or webhooks of bot processes --------------------------------


Send = Callable[[int, str | None, str | None, str], Awaitable[None]]  # user, text, callback data, language


def _said(telegram: FakeTelegram, user: int, since: int) -> list[Call]:
    return [c for c in telegram.calls[since:] if str(c.params.get("chat_id", "")) == str(user)
            or (c.method == "answerCallbackQuery" and c.params.get("text"))]  # fmt: skip


async def _wait_for(
    telegram: FakeTelegram, user: int, since: int, needle: str, timeout: float = 60.0, *, button: str | None = None
) -> Call:
    """The first reply to ``user`` after ``since`` containing ``needle`` (and a button whose data starts with
    ``button``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for call in _said(telegram, user, since):
            if needle in call.text and (button is None or any(d and d.startswith(button) for _t, d in call.buttons)):
                return call
        await asyncio.sleep(0.02)
    raise AssertionError(f"user {user} never saw {needle!r}: {[c.text[:80] for c in _said(telegram, user, since)]}")


async def _link(send: Send, telegram: FakeTelegram, user: int, login: int, password: str, lang: str = "en",
                expect: str = "linked") -> tuple[Call, float]:  # fmt: skip
    """The /trading link conversation; the reply that contains ``expect`` and the time from password to it."""
    since = len(telegram.calls)
    await send(user, None, "tg:link:0", lang)
    for step in (str(login), SERVER):  # each prompt (login, then server, then password) is bold somewhere
        await _wait_for(telegram, user, since, "<b>")
        since = len(telegram.calls)
        await send(user, step, None, lang)
    await _wait_for(telegram, user, since, "<b>")
    mark, started = len(telegram.calls), time.perf_counter()
    await send(user, password, None, lang)
    reply = await _wait_for(telegram, user, mark, expect)
    return reply, time.perf_counter() - started


async def _buy(send: Send, telegram: FakeTelegram, user: int) -> str:
    """Preview a buy; returns the Confirm button's data."""
    since = len(telegram.calls)
    await send(user, f"/trade buy {SYMBOL} 0.01", None, "en")
    preview = await _wait_for(telegram, user, since, "BUY 0.01", button="tr:ok:")
    return next(data for _text, data in preview.buttons if data and data.startswith("tr:ok:"))


async def _scenario(send: Send, telegram: FakeTelegram, pool: Pool, db_url: str, label: str) -> None:
    await _prepare_users(db_url, USERS)
    # three users link three accounts at the same time
    linked = await asyncio.gather(*(_link(send, telegram, u, *ACCOUNTS[i]) for i, u in enumerate(USERS[:3])))
    leases = await _leases(db_url)
    assert sorted(leases) == [a[0] for a in ACCOUNTS[:3]]
    assert sorted(leases.values()) == sorted(b.endpoint for b in pool.terminals)  # one terminal each
    for user in USERS[:3]:
        since = len(telegram.calls)
        await send(user, None, "tg:live:0", "en")
        await _wait_for(telegram, user, since, "live")

    # ...and trade at the same moment
    confirms = await asyncio.gather(*(_buy(send, telegram, u) for u in USERS[:3]))
    marks = [len(telegram.calls)] * 3
    started = time.perf_counter()

    async def confirm(user: int, data: str, since: int) -> float:
        await send(user, None, data, "en")
        await _wait_for(telegram, user, since, "Order placed")
        return time.perf_counter() - started

    latencies = await asyncio.gather(*(confirm(u, d, m) for u, d, m in zip(USERS[:3], confirms, marks)))
    order_ids = [data.rsplit(":", 1)[1] for data in confirms]
    where = await _positions(pool)
    for i, (login, _password) in enumerate(ACCOUNTS[:3]):
        # the order is on the account's own terminal, in that account, and nowhere else
        assert where[(leases[login], login)] == [order_ids[i]], where
    assert sum(len(v) for v in where.values()) == 3, where

    # a fourth link: no free terminal, told in the user's language; nothing stored
    _reply, _t = await _link(send, telegram, USERS[3], *ACCOUNTS[3], expect="Every trading terminal is busy")
    _reply, _t = await _link(send, telegram, USERS[3], *ACCOUNTS[3], lang="ru", expect="Все торговые терминалы")
    _reply, _t = await _link(send, telegram, USERS[3], *ACCOUNTS[3], lang="es", expect="Todos los terminales")
    assert ACCOUNTS[3][0] not in await _leases(db_url)

    # unlinking frees a terminal; the fourth user gets it
    freed = leases[ACCOUNTS[0][0]]
    since = len(telegram.calls)
    await send(USERS[0], None, "tg:unlink:0", "en")
    await _wait_for(telegram, USERS[0], since, "unlinked")
    _reply, _t = await _link(send, telegram, USERS[3], *ACCOUNTS[3])
    after = await _leases(db_url)
    assert after[ACCOUNTS[3][0]] == freed and ACCOUNTS[0][0] not in after

    links = [t for _c, t in linked]
    print(f"\n[{label}] link (password to reply, 3 at once): "
          f"median {statistics.median(links) * 1000:.0f} ms, max {max(links) * 1000:.0f} ms; "
          f"order (confirm to reply, 3 at once): median {statistics.median(latencies) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms")  # fmt: skip


# ---- through the Dispatcher, both stacks ------------------------------------------------------------------------------


@pytest.fixture
async def pooled_harness(stack: Settings, telegram: FakeTelegram, pool: Pool) -> AsyncIterator[Harness]:
    from tests.bot.market.conftest import Unlimited

    settings = stack.model_copy(update={
        "mt5_backend": "rpyc", "mt5_rpyc_host": "127.0.0.1", "mt5_rpyc_port": pool.data.port,
        "mt5_rpyc_pool": pool.endpoints, "mt5_bridge_secret": SecretStr(SECRET),
    })  # fmt: skip
    h = await build_harness(settings, telegram, limiter=Unlimited())
    yield h
    await h.close()


async def test_three_terminals_three_users_through_the_dispatcher(
    pooled_harness: Harness, telegram: FakeTelegram, pool: Pool, stack: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    h = pooled_harness
    caplog.set_level(logging.ERROR, logger="domain.trading.pool")

    async def send(user: int, text: str | None, data: str | None, lang: str) -> None:
        if data is not None:
            await h.press(data, user=user, lang=lang)
        else:
            await h.send(text, user=user, lang=lang)

    await _scenario(send, telegram, pool, str(stack.database_url), "dispatcher, " + str(stack.database_url)[:10])
    told = [r.getMessage() for r in caplog.records if "terminal pool exhausted" in r.getMessage()]
    assert len(told) == 3 and "all 3 terminals" in told[0]  # staff see it in the logs, as an ERROR
    figures = await h.app.ops.figures()
    assert figures.terminals is not None
    assert (figures.terminals.size, figures.terminals.leased, figures.terminals.free) == (3, 3, 0)
    assert figures.terminals.refused == 3
    async with h.app.sessionmaker() as session:  # refusals were reported, without the password typed
        contexts = list(await session.scalars(select(ErrorEventRow.context)))
    assert contexts and all("Pass-" not in c for c in contexts), contexts
    status = (await h.send("/status", user=USERS[0]))[0].text
    assert "MT5 terminals: 3 · leased 3 · free 0 · unhealthy 0" in status
    from bot.web.app import create_web_app
    from tests.fakes import serve_on_loopback

    runner, url = await serve_on_loopback(create_web_app(h.app, h.bot))
    try:
        async with aiohttp.ClientSession() as http, http.get(url + "/metrics") as resp:
            metrics = await resp.text()
    finally:
        await runner.cleanup()
    assert 'hybrid_mt5_terminals{state="leased"} 3.0' in metrics and "hybrid_mt5_pool_refusals 3.0" in metrics


# ---- two bot processes on PostgreSQL + Redis ----------------------------------------------------------------------------


def _env(pg_url: str, redis_url: str, api: str, port: int, pool: Pool, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WEBHOOK_", "DATABASE_", "REDIS_", "MT5_"))}
    env.update(
        BOT_TOKEN=TOKEN, TELEGRAM_API_URL=api, DATABASE_URL=pg_url, REDIS_URL=redis_url, WEB_PORT=str(port),
        WEBHOOK_URL=f"http://127.0.0.1:{port}", WEBHOOK_SECRET=WEBHOOK_SECRET, WORKERS="external",
        SECRET_KEY="pool-test-secret", LOG_FORMAT="text", DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1",
        MT5_BACKEND="rpyc", MT5_RPYC_HOST="127.0.0.1", MT5_RPYC_PORT=str(pool.data.port), MT5_RPYC_POOL=pool.endpoints,
        MT5_BRIDGE_SECRET=SECRET,
    )  # fmt: skip
    return env


def _tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def _healthy(http: aiohttp.ClientSession, port: int, proc: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.returncode is not None:
            raise AssertionError(f"the bot exited with {proc.returncode}: {_tail(log)}")
        try:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"the bot never became healthy: {_tail(log)}")


def _update(user: int, text: str | None, data: str | None, lang: str) -> dict[str, Any]:
    who = {"id": user, "is_bot": False, "first_name": "Pat", "language_code": lang}
    if data is not None:
        return {"update_id": next(_ids), "callback_query": {
            "id": str(next(_ids)), "chat_instance": "ci", "data": data, "from": who,
            "message": {"message_id": 7, "date": int(time.time()), "chat": {"id": user, "type": "private"}, "text": "…"},
        }}  # fmt: skip
    return {"update_id": next(_ids), "message": {
        "message_id": next(_ids), "date": int(time.time()), "chat": {"id": user, "type": "private"}, "from": who,
        "text": text,
    }}  # fmt: skip


async def test_three_terminals_three_users_through_two_bot_processes(
    pg_url: str, redis_url: str, telegram: FakeTelegram, pool: Pool, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"bot-{i}.log" for i in range(2)]
    procs: list[asyncio.subprocess.Process] = []
    try:
        for port, log in zip(ports, logs):
            with log.open("wb") as out:  # a file, not a pipe nobody reads while it runs
                procs.append(await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "bot", "run", cwd=ROOT, stdout=out, stderr=asyncio.subprocess.STDOUT,
                    env=_env(pg_url, redis_url, telegram.url, port, pool, tmp_path),
                ))  # fmt: skip
        rr = itertools.cycle(ports)
        async with aiohttp.ClientSession() as http:
            for port, proc, log in zip(ports, procs, logs):
                await _healthy(http, port, proc, log)

            async def send(user: int, text: str | None, data: str | None, lang: str) -> None:
                headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
                url = f"http://127.0.0.1:{next(rr)}/webhooks/telegram"  # every update hops to the other process
                async with http.post(url, json=_update(user, text, data, lang), headers=headers) as resp:
                    assert resp.status == 200

            await _scenario(send, telegram, pool, pg_url, "two bot processes, PostgreSQL + Redis")
            for port in ports:  # each process reads the same pool from the database
                async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                    metrics = await resp.text()
                assert 'hybrid_mt5_terminals{state="leased"} 3.0' in metrics, metrics[-2000:]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            await asyncio.wait_for(proc.wait(), 60)
    for log in logs:
        text = log.read_text()
        assert "Traceback" not in text, text[-3000:]
        assert "Pass-" not in text  # no password in any log line
