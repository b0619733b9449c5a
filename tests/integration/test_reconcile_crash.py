"""kill -9 the bot while an order is in SENDING: the user confirms a live order in chat, the real bridge
server process executes it, and the bot is killed while it waits for the answer. After a restart the
reconciler settles the order from the terminal's history exactly once and the user gets the real outcome in
their language from the fake Bot API. ``python -m bot run`` processes on PostgreSQL, the account lock held by
the killed process released with its connection."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select, update

from bot.settings import Settings
from domain.db.models import AuditRow, OrderRow, UserRow
from domain.db.uow import UnitOfWork
from domain.market.bridge import BridgeGateway
from domain.trading.crypto import SecretBox
from domain.trading.models import AccountKind, LinkedAccount, TradingProfile
from tests.fakes.bridge_line import Line
from tests.fakes.telegram import TOKEN, Call, FakeTelegram
from tests.harness import build_harness
from tests.servers import LIVE_LOGIN, LIVE_PASSWORD, LIVE_SERVER, free_port, sim_bridge

ROOT = Path(__file__).resolve().parents[2]
USER = 7101
LOGIN, PASSWORD, SERVER = LIVE_LOGIN, LIVE_PASSWORD, LIVE_SERVER  # the account the bridge serves
_ids = itertools.count(5_000)


async def _wait(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[int]:
    async with sim_bridge(tmp_path / "bridge.log") as port:
        yield port


def _message(text: str) -> dict[str, object]:
    return {"update_id": next(_ids), "message": {
        "message_id": next(_ids), "date": int(time.time()), "chat": {"id": USER, "type": "private"},
        "from": {"id": USER, "is_bot": False, "first_name": "Olga", "language_code": "ru"}, "text": text}}  # fmt: skip


def _press(data: str) -> dict[str, object]:
    return {"update_id": next(_ids), "callback_query": {
        "id": str(next(_ids)), "chat_instance": "ci", "data": data,
        "from": {"id": USER, "is_bot": False, "first_name": "Olga", "language_code": "ru"},
        "message": {"message_id": next(_ids), "date": int(time.time()), "chat": {"id": USER, "type": "private"},
                    "text": "…"}}}  # fmt: skip


async def _start(env: dict[str, str], port: int, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=ROOT, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )

    async def healthy() -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                return resp.status in (200, 503)
        except aiohttp.ClientError:
            return False

    await _wait(healthy, 60, "the bot's /healthz")
    return proc


def _to_user(telegram: FakeTelegram) -> list[Call]:
    return [c for c in telegram.calls if str(c.params.get("chat_id")) == str(USER)]


async def test_kill_9_with_an_order_in_sending_settles_it_from_history_once_after_restart(
    pg_url: str, telegram: FakeTelegram, bridge: int, tmp_path: Path
) -> None:
    line = await Line(bridge).start()
    terminal = BridgeGateway(
        "127.0.0.1", bridge, timeout=5, retries=2, backoff=0.05, login=LOGIN, password=PASSWORD, server=SERVER
    )
    settings = Settings(database_url=pg_url, data_dir=tmp_path, secret_key="test-secret", mt5_backend="rpyc",
                        mt5_rpyc_host="127.0.0.1", mt5_rpyc_port=line.port)  # fmt: skip
    try:
        await terminal.connect()
        login = (await terminal.account()).login
        h = await build_harness(settings, telegram)  # the user: onboarded, Basic, a live account in use
        try:
            await h.send("/start", user=USER, lang="ru")
            now = datetime.now(UTC)
            async with UnitOfWork(h.app.sessionmaker) as uow:
                await uow.session.execute(update(UserRow).where(UserRow.id == USER).values(tier="basic", language="ru"))
                await uow.trading.replace_account(LinkedAccount(USER, AccountKind.LIVE, login, SERVER),
                                                  SecretBox(settings.secret()).seal(PASSWORD), now)  # fmt: skip
                await uow.trading.save_profile(TradingProfile(USER, active=AccountKind.LIVE), now)
                await uow.commit()
        finally:
            await h.close()

        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WEBHOOK_", "DATABASE_", "REDIS_"))}
        env.update(
            DATA_DIR=str(tmp_path / "var"), LOG_LEVEL="INFO", PYTHONUNBUFFERED="1", BOT_TOKEN=TOKEN,
            TELEGRAM_API_URL=telegram.url, WEB_PORT=str(port), DATABASE_URL=pg_url, SECRET_KEY="test-secret",
            MT5_BACKEND="rpyc", MT5_RPYC_HOST="127.0.0.1", MT5_RPYC_PORT=str(line.port), OUTBOX_CHAT_INTERVAL="0",
        )  # fmt: skip
        log = tmp_path / "bot.log"
        proc = await _start(env, port, log)

        before = len(_to_user(telegram))
        await telegram.updates.put(_message("/trade buy BTCUSD 0.01"))

        async def previewed() -> bool:
            return any(d and d.startswith("tr:ok:") for c in _to_user(telegram)[before:] for _, d in c.buttons)

        await _wait(previewed, 30, "the order preview")
        data = next(d for c in _to_user(telegram)[before:] for _, d in c.buttons if d and d.startswith("tr:ok:"))
        order_id = data.split(":")[-1]
        line.lose_answer_to(b"order_send", cut=False)  # delivered to the terminal; the answer never comes back
        await telegram.updates.put(_press(data))

        async def in_flight() -> bool:
            return line.swallowed.is_set()

        await _wait(in_flight, 30, "the order to reach the terminal")
        proc.send_signal(signal.SIGKILL)  # kill -9 while the bot waits for the terminal's answer
        await proc.wait()
        [position] = await terminal.positions()
        assert position.comment == order_id
        check = await build_harness(settings, telegram)
        try:
            async with check.app.sessionmaker() as s:
                row = await s.get(OrderRow, order_id)
                assert row is not None and row.status == "sending"
        finally:
            await check.close()
        assert not any("исполнен" in c.text for c in _to_user(telegram))

        await line.restore()  # the bridge is reachable again; the bot restarts
        proc = await _start(env, port, log)
        try:

            async def told() -> bool:
                return any("исполнен" in c.text for c in _to_user(telegram))

            await _wait(told, 60, "the settlement message")
            await asyncio.sleep(1.0)  # a second pass of nothing more (reconcile runs at start, then every 30 s)
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 60)
        assert proc.returncode == 0, log.read_text()[-3000:]
    finally:
        await terminal.close()
        await line.close()

    notices = [c for c in _to_user(telegram) if c.method == "sendMessage" and "исполнен" in c.text]
    assert len(notices) == 1
    assert f"Ордер {order_id[:8]} исполнен" in notices[0].text and f"#{position.ticket}" in notices[0].text
    check = await build_harness(settings, telegram)
    try:
        async with check.app.sessionmaker() as s:
            row = await s.get(OrderRow, order_id)
            audits = (await s.execute(select(AuditRow).where(AuditRow.action == "trade.reconciled"))).scalars().all()
        assert row is not None and row.status == "done" and row.result["ticket"] == position.ticket
        assert row.result["price"] == position.price_open and row.result["volume"] == 0.01
        assert [a.details["order"] for a in audits] == [order_id]
    finally:
        await check.close()
    assert len(await _positions(bridge)) == 1  # nothing was sent twice


async def _positions(port: int) -> list:  # type: ignore[type-arg]
    gw = BridgeGateway("127.0.0.1", port, timeout=5, retries=2, backoff=0.05)
    try:
        await gw.connect()
        return await gw.positions()
    finally:
        await gw.close()
