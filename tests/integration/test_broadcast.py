"""Broadcast to 5,000 users through the persisted outbox: paced, resumable after a crash, never twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import UTC, datetime

import pytest
from aiogram.methods import SendMessage
from sqlalchemy import func, insert, select

from bot import outgoing
from domain.broadcast import BroadcastService, Delivery, Draft, Segment, Status
from domain.db.models import OutboxRow, UserRow
from domain.db.uow import UnitOfWork
from domain.users import DEFAULT_NOTIFICATIONS, Role, User
from tests.harness import Harness
from workers.broadcast import BroadcastSender, Pacer

ADMIN = 9001
USERS = 5000
FIRST = 100_000


def _admin() -> User:
    now = datetime.now(UTC)
    return User(ADMIN, "Boss", "boss", None, "en", "UTC", Role.ADMIN, "free", None, "adm", None, {}, now, now)


async def _users(h: Harness, n: int) -> None:
    now = datetime.now(UTC)
    rows = [
        {"id": FIRST + i, "first_name": f"U{i}", "username": None, "language": None, "tg_language": "en",
         "timezone": "UTC", "role": "user", "tier": "free", "tier_expires_at": None, "referral_code": f"c{i}",
         "referred_by": None, "notifications": dict(DEFAULT_NOTIFICATIONS), "is_blocked": False,
         "created_at": now, "last_seen_at": now}
        for i in range(n)
    ]  # fmt: skip
    async with UnitOfWork(h.app.sessionmaker) as uow:
        await uow.session.execute(insert(UserRow), rows)
        await uow.commit()


async def test_broadcast_to_5000_users_resumes_after_a_crash_without_duplicates(harness: Harness) -> None:
    h = harness
    await _users(h, USERS)
    service = BroadcastService()
    async with UnitOfWork(h.app.sessionmaker) as uow:
        broadcast = await service.create(
            uow, _admin(), Draft("Big <news>", button_text="Read", button_url="https://example.com/news")
        )
        progress = await service.start(uow, _admin(), broadcast.id)
    assert progress.total == USERS
    h.telegram.fail("sendMessage", 403, "Forbidden: bot was blocked by the user", times=2)  # the first two recipients

    def recipients() -> list[int]:
        return [int(c.params["chat_id"]) for c in h.telegram.sent() if int(c.params["chat_id"]) != ADMIN]

    halfway = asyncio.Event()
    delivered = [0]

    async def watch(make_request, bot, method):  # type: ignore[no-untyped-def]
        result = await make_request(bot, method)
        delivered[0] += isinstance(method, SendMessage) and method.chat_id != ADMIN
        if delivered[0] >= 2000:
            halfway.set()
        return result

    h.bot.session.middleware(watch)
    first = BroadcastSender(h.app.sessionmaker, h.bot, h.app.i18n, rate=50_000, report_every=1000)
    task = asyncio.create_task(first.run_once())
    await asyncio.wait_for(halfway.wait(), 120)
    task.cancel()  # the crash: mid-way, wherever the sender happens to be
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert len(recipients()) < USERS

    second = BroadcastSender(h.app.sessionmaker, h.bot, h.app.i18n, rate=50_000, report_every=1000)
    await second.run_once()

    sent_to = recipients()
    counts = Counter(sent_to)
    assert max(counts.values()) == 1, "somebody got the broadcast twice"
    async with UnitOfWork(h.app.sessionmaker) as uow:
        by_status = dict(
            (await uow.session.execute(select(OutboxRow.status, func.count()).group_by(OutboxRow.status))).all()
        )
        stored = await uow.broadcasts.get(broadcast.id)
        blocked = set(await uow.session.scalars(select(UserRow.id).where(UserRow.is_blocked.is_(True))))
        sent_rows = set(await uow.session.scalars(select(OutboxRow.user_id).where(OutboxRow.status == "sent")))
    assert stored is not None and stored.status == Status.DONE
    assert by_status.get(Delivery.BLOCKED.value) == 2 and blocked == {FIRST, FIRST + 1}
    assert by_status.get(Delivery.UNKNOWN.value, 0) <= 1  # at most the one message in flight at the crash
    assert sum(by_status.values()) == USERS and not by_status.get("pending") and not by_status.get("claimed")
    assert sent_rows <= set(counts) and len(sent_rows) >= USERS - 3
    assert set(counts) - sent_rows <= {u for u in range(FIRST, FIRST + USERS) if u not in sent_rows}
    assert len(set(counts) - sent_rows) <= by_status.get(Delivery.UNKNOWN.value, 0)
    message = next(c for c in h.telegram.sent() if int(c.params["chat_id"]) == FIRST + 2)
    assert message.text == "Big &lt;news&gt;" and message.buttons == [("Read", None)]
    reports = [c for c in h.telegram.calls if int(c.params.get("chat_id", 0) or 0) == ADMIN]
    assert reports and "finished" in reports[-1].text and f"Delivered: {len(sent_rows)} of {USERS}" in reports[-1].text


async def test_segment_selects_tier_language_and_activity(harness: Harness) -> None:
    h = harness
    await _users(h, 6)
    async with UnitOfWork(h.app.sessionmaker) as uow:
        await uow.users.update(FIRST, tier="pro")
        await uow.users.update(FIRST + 1, language="ru")
        await uow.users.update(FIRST + 2, is_blocked=True)
        await uow.commit()
        service = BroadcastService()
        assert await service.audience(uow, _admin(), Segment()) == 5
        assert await service.audience(uow, _admin(), Segment(tier="pro")) == 1
        assert await service.audience(uow, _admin(), Segment(tier="free")) == 4
        assert await service.audience(uow, _admin(), Segment(language="ru")) == 1
        assert await service.audience(uow, _admin(), Segment(language="en")) == 4
        assert await service.audience(uow, _admin(), Segment(active_days=7)) == 5


async def test_flood_control_waits_and_sends_the_same_row_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    await _users(h, 3)
    service = BroadcastService()
    async with UnitOfWork(h.app.sessionmaker) as uow:
        broadcast = await service.create(uow, _admin(), Draft("hello"))
        await service.start(uow, _admin(), broadcast.id)
    # more 429s than the session's own retries absorb: the sender itself waits and retries the row
    monkeypatch.setattr(outgoing, "MAX_RETRIES", 0)  # the session's own retries are tested elsewhere
    h.telegram.fail("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7, times=2)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    pacer = Pacer(1000, sleep=sleep)
    await BroadcastSender(h.app.sessionmaker, h.bot, h.app.i18n, pacer=pacer).run_once()
    assert waits.count(7) == 2  # waited what Telegram asked, twice, before retrying the same row
    sent = Counter(int(c.params["chat_id"]) for c in h.telegram.sent() if int(c.params["chat_id"]) != ADMIN)
    assert sent == {FIRST: 1, FIRST + 1: 1, FIRST + 2: 1}
    async with UnitOfWork(h.app.sessionmaker) as uow:
        assert await uow.broadcasts.counts(broadcast.id) == {"sent": 3}
