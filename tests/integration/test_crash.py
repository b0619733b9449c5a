"""kill -9 the bot while it drains a broadcast and an alert storm; after a restart every message went out
exactly once — except, at most, the single message each sender had in flight at the kill, which is kept as
``unknown`` and never resent (domain/outbox.py). Counted per key at the fake Bot API, on PostgreSQL + Redis.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from sqlalchemy import insert, select

from bot.settings import Settings
from domain.broadcast import BroadcastService, Draft
from domain.db.models import NotificationRow, OutboxRow, UserRow
from domain.db.outbox import SqlOutboxRepository
from domain.db.uow import UnitOfWork
from domain.outbox import Kind, Message
from domain.users import DEFAULT_NOTIFICATIONS, Role, User
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.harness import build_harness
from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
ADMIN = 9001
USERS = 60
ALERTS_PER_USER = 3
FIRST = 300_000


def _admin() -> User:
    now = datetime.now(UTC)
    return User(ADMIN, "Boss", "boss", None, "en", "UTC", Role.ADMIN, "free", None, "adm", None, {}, now, now)


async def _wait(predicate, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


async def _start(env: dict[str, str], port: int, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:  # a file, not a pipe: a full pipe would stall the bot's logging
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", cwd=ROOT, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )

    async def healthy() -> bool:
        try:
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                return resp.status in (200, 503)
        except aiohttp.ClientError:
            return False

    await _wait(healthy, 60)
    return proc


async def test_kill_9_during_a_broadcast_and_an_alert_storm_delivers_each_message_once(
    pg_url: str, redis_url: str, telegram: FakeTelegram, tmp_path: Path
) -> None:
    settings = Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path, secret_key="test-secret")
    h = await build_harness(settings, telegram)
    now = datetime.now(UTC)
    users = [FIRST + i for i in range(USERS)]
    try:
        async with UnitOfWork(h.app.sessionmaker) as uow:
            await uow.session.execute(insert(UserRow), [
                {"id": u, "first_name": f"U{u}", "username": None, "language": None, "tg_language": "en",
                 "timezone": "UTC", "role": "user", "tier": "free", "tier_expires_at": None,
                 "referral_code": f"k{u}", "referred_by": None, "notifications": dict(DEFAULT_NOTIFICATIONS),
                 "is_blocked": False, "created_at": now, "last_seen_at": now}
                for u in users
            ])  # fmt: skip
            await uow.commit()
        service = BroadcastService()
        async with UnitOfWork(h.app.sessionmaker) as uow:
            broadcast = await service.create(uow, _admin(), Draft("Big news for everyone"))
            await service.start(uow, _admin(), broadcast.id)
        async with h.app.sessionmaker() as session:  # the storm: alerts fired for everyone, queued
            repo = SqlOutboxRepository(session)
            for i in range(ALERTS_PER_USER):
                for u in users:
                    await repo.add(Message(f"alert:{u}:{i}", u, f"storm {u}/{i}", Kind.ALERT), now)
            await session.commit()
    finally:
        await h.close()
    total = USERS * (1 + ALERTS_PER_USER)

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WEBHOOK_", "DATABASE_", "REDIS_"))}
    env.update(
        DATA_DIR=str(tmp_path / "var"), LOG_LEVEL="INFO", PYTHONUNBUFFERED="1", BOT_TOKEN=TOKEN,
        TELEGRAM_API_URL=telegram.url, WEB_PORT=str(port), DATABASE_URL=pg_url, REDIS_URL=redis_url,
        SECRET_KEY="test-secret", OUTBOX_RATE="60", BROADCAST_RATE="60", OUTBOX_CHAT_INTERVAL="0",
    )  # fmt: skip

    def delivered() -> list[str]:
        return [c.text for c in telegram.sent() if int(c.params["chat_id"]) != ADMIN]

    log = tmp_path / "bot.log"
    proc = await _start(env, port, log)

    async def some_went_out() -> bool:
        return len(delivered()) >= total // 3

    await _wait(some_went_out, 60)
    proc.send_signal(signal.SIGKILL)  # kill -9: no shutdown, no hand-over, whatever was in flight
    await proc.wait()
    at_kill = len(delivered())
    assert at_kill < total

    proc = await _start(env, port, log)
    try:
        check = await build_harness(settings, telegram)
        try:

            async def drained() -> bool:
                async with check.app.sessionmaker() as session:
                    waiting = await session.scalar(
                        select(NotificationRow.id).where(NotificationRow.status == "pending").limit(1)
                    )
                    queued = await session.scalar(
                        select(OutboxRow.id).where(OutboxRow.status.in_(("pending", "claimed"))).limit(1)
                    )
                return waiting is None and queued is None

            await _wait(drained, 90)
            async with check.app.sessionmaker() as session:
                alert_rows = {r.key: r.status for r in (await session.scalars(select(NotificationRow))).all()}
                broadcast_rows = {r.user_id: r.status for r in (await session.scalars(select(OutboxRow))).all()}
        finally:
            await check.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
    assert proc.returncode == 0, log.read_text()[-3000:]

    seen = Counter(t for t in delivered() if t.startswith("storm "))
    per_user = Counter(int(c.params["chat_id"]) for c in telegram.sent() if c.text == "Big news for everyone")
    assert len(delivered()) > at_kill  # the restarted bot carried on
    assert max(seen.values()) == 1 and max(per_user.values()) == 1  # never twice
    # exactly once, but for the message each sender had in flight at the kill (kept, never resent)
    in_doubt = [k for k, s in alert_rows.items() if s in ("unknown", "sending")]
    assert len(in_doubt) <= 1, in_doubt
    for key, status in alert_rows.items():
        _, user, i = key.split(":")
        assert seen[f"storm {user}/{i}"] == 1 or key in in_doubt, (key, status)
        assert status in ("sent", "unknown", "sending")
    doubtful_users = [u for u, s in broadcast_rows.items() if s == "unknown"]
    assert len(doubtful_users) <= 1, doubtful_users
    for user, status in broadcast_rows.items():
        assert per_user[user] == 1 or user in doubtful_users, (user, status)
    assert len(alert_rows) == USERS * ALERTS_PER_USER and len(broadcast_rows) == USERS
