"""The notification outbox: domain rules, the repository, the notifier and the sender against the fake Bot API.

Sender tests run on both stacks (the ``harness`` fixture: SQLite + memory, PostgreSQL + Redis) and drive
the sender themselves (``deliver_outbox = False``); the Bot they use has no flood-control retries of its own
so a 429 reaches the sender as it would after bot/outgoing.py gave up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from sqlalchemy import select

from bot.notify import OutboxNotifier
from domain.alerts.models import AlertFired, Direction
from domain.db.models import NotificationRow
from domain.db.outbox import SqlOutboxRepository
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from domain.outbox import MAX_KEY, Kind, Message, Pacing, Status, kind_of, markup_json, normalize_key
from tests.bot.market.conftest import START
from tests.fakes.telegram import TOKEN
from tests.harness import Harness
from tests.servers import free_port
from workers.broadcast import Pacer
from workers.outbox import OutboxSender

# --- domain -------------------------------------------------------------------


def test_kind_comes_from_the_key() -> None:
    assert kind_of("alert:12:1700") is Kind.ALERT
    assert kind_of("ticket:3:answer:1:2") is Kind.TICKET
    assert kind_of("agents:digest:5:2026-11-20") is Kind.DIGEST
    assert kind_of("agents:signal:5:9") is Kind.SIGNAL
    assert kind_of("whatever") is Kind.OTHER


def test_long_keys_stay_unique_and_fit() -> None:
    a, b = "x" * 300 + "a", "x" * 300 + "b"
    assert len(normalize_key(a)) == MAX_KEY and normalize_key(a) != normalize_key(b)
    assert normalize_key("alert:1:2") == "alert:1:2"
    with pytest.raises(ValueError):
        normalize_key("")


def test_pacing_limits_and_backoff() -> None:
    p = Pacing(global_rate=25, chat_interval=1.0, group_per_minute=20, backoff_base=2, backoff_max=60)
    assert p.interval_for(1001) == 1.0 and p.interval_for(-100123) == 3.0
    assert [p.backoff(n).total_seconds() for n in (1, 2, 3, 4, 10)] == [2, 4, 8, 16, 60]
    with pytest.raises(ValueError):
        Pacing(global_rate=0)


def test_markup_is_stored_as_telegram_json() -> None:
    markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="📈 Chart", callback_data="ch:EURUSD")]])
    assert markup_json(markup) == {"inline_keyboard": [[{"text": "📈 Chart", "callback_data": "ch:EURUSD"}]]}
    assert markup_json(None) is None


# --- with a database and the fake Bot API -------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC) + timedelta(seconds=1)  # the notifier queues at the real time
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


@pytest.fixture
async def h(harness: Harness) -> AsyncIterator[Harness]:
    harness.deliver_outbox = False
    for user in (1001, 1002, 1003):
        await harness.send("/start", user=user)
    harness.telegram.calls.clear()
    yield harness


@pytest.fixture
async def raw_bot(h: Harness) -> AsyncIterator[Bot]:
    """A Bot without bot/outgoing.py's own 429 retries."""
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(h.telegram.url)))
    yield bot
    await bot.session.close()


def sender(h: Harness, bot: Bot, clock: Clock, **pacing: float) -> OutboxSender:
    async def no_sleep(_: float) -> None:
        return None

    return OutboxSender(
        h.app.sessionmaker, bot, Pacing(**pacing), pacer=Pacer(1000, clock=clock.monotonic, sleep=no_sleep),  # type: ignore[arg-type]
        clock=clock, monotonic=clock.monotonic, sleep=no_sleep,
    )  # fmt: skip


async def rows(h: Harness) -> dict[str, NotificationRow]:
    async with h.app.sessionmaker() as s:
        return {r.key: r for r in (await s.scalars(select(NotificationRow))).all()}


def to(h: Harness, chat: int) -> list[str]:
    return [c.text for c in h.telegram.sent() if int(c.params["chat_id"]) == chat]


async def test_notifier_queues_once_per_key_and_the_sender_delivers_once(h: Harness, raw_bot: Bot) -> None:
    notifier = h.app.notifier
    assert isinstance(notifier, OutboxNotifier)
    markup = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="🔔 My alerts", callback_data="al:list")]]
    )
    assert await notifier.send(1001, "first", markup, key="alert:1:100")
    assert await notifier.send(1001, "first again", key="alert:1:100")  # same key: already queued
    assert await notifier.send(1001, "second", key="alert:2:100")
    assert await notifier.send(1002, "hola", key="ticket:9:answer:1:1")
    assert to(h, 1001) == []  # queued, not sent
    clock = Clock()
    s = sender(h, raw_bot, clock, chat_interval=0)
    assert await s.drain(paced=True) == 3
    assert to(h, 1001) == ["first", "second"] and to(h, 1002) == ["hola"]  # FIFO per chat
    first = next(c for c in h.telegram.sent() if c.text == "first")
    assert first.buttons == [("🔔 My alerts", "al:list")]
    stored = await rows(h)
    assert {k: r.status for k, r in stored.items()} == dict.fromkeys(stored, "sent")
    assert stored["ticket:9:answer:1:1"].kind == "ticket" and stored["alert:1:100"].sent_at is not None
    assert await s.drain() == 0  # nothing twice


async def test_one_message_per_second_per_chat_and_no_head_of_line_blocking(h: Harness, raw_bot: Bot) -> None:
    for i in range(3):
        await h.app.notifier.send(1001, f"a{i}", key=f"alert:a:{i}")  # type: ignore[union-attr]
    await h.app.notifier.send(1002, "b0", key="alert:b:0")  # type: ignore[union-attr]
    clock = Clock()
    s = sender(h, raw_bot, clock, chat_interval=1.0)
    assert await s.send_next() and await s.send_next()  # a0, then b0 overtakes a1 (other chat)
    assert not await s.send_next()  # a1 must wait a second
    assert to(h, 1001) == ["a0"] and to(h, 1002) == ["b0"]
    clock.advance(1.0)
    assert await s.send_next() and not await s.send_next()
    clock.advance(1.0)
    assert await s.send_next()
    assert to(h, 1001) == ["a0", "a1", "a2"]


async def test_global_rate_spaces_every_send() -> None:
    slept: list[float] = []
    now = [0.0]

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    pacer = Pacer(25, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        await pacer.wait()
    assert slept == [0.04] * 4
    await pacer.pause(3)  # a 429 for the whole bot: nothing goes out for 3 s
    assert slept[-1] == 3


async def test_flood_control_reschedules_without_spending_attempts(h: Harness, raw_bot: Bot) -> None:
    await h.app.notifier.send(1001, "later", key="billing:1")  # type: ignore[union-attr]
    await h.app.notifier.send(1001, "after that", key="billing:2")  # type: ignore[union-attr]
    h.telegram.fail("sendMessage", 429, "Too Many Requests: retry after 30", retry_after=30, times=3)
    clock = Clock()
    s = sender(h, raw_bot, clock, max_attempts=2, chat_interval=0)
    for _ in range(3):
        assert await s.send_next()
        row = (await rows(h))["billing:1"]
        assert row.status == "pending" and row.next_attempt_at == clock.now + timedelta(seconds=30)
        assert not await s.send_next()  # the chat's other message waits too, in order
        clock.advance(30)
    assert await s.drain() == 2
    assert to(h, 1001) == ["later", "after that"]
    assert (await rows(h))["billing:1"].status == "sent"


async def test_blocked_user_is_flagged_and_skipped(h: Harness, raw_bot: Bot) -> None:
    notifier = h.app.notifier
    await notifier.send(1003, "one", key="alert:x:1")  # type: ignore[union-attr]
    await notifier.send(1003, "two", key="alert:x:2")  # type: ignore[union-attr]
    await notifier.send(1001, "fine", key="alert:y:1")  # type: ignore[union-attr]
    h.telegram.fail("sendMessage", 403, "Forbidden: bot was blocked by the user")
    s = sender(h, raw_bot, Clock(), chat_interval=0)
    await s.drain()
    stored = await rows(h)
    assert stored["alert:x:1"].status == "blocked" and stored["alert:x:2"].status == "blocked"
    assert stored["alert:y:1"].status == "sent" and to(h, 1003) == []
    assert (await h.stored_user(1003)) is not None
    async with h.app.sessionmaker() as session:
        assert await SqlOutboxRepository(session).is_blocked(1003)
    assert not await notifier.send(1003, "three", key="alert:x:3")  # type: ignore[union-attr]
    assert "alert:x:3" not in await rows(h)
    # the user unblocks and writes again: their next update clears the flag, and they hear from us again
    await h.send("/start", user=1003, first_name="Back")
    assert await notifier.send(1003, "welcome back", key="alert:x:4")  # type: ignore[union-attr]
    await s.drain()
    assert to(h, 1003)[-1] == "welcome back"


async def test_server_errors_back_off_then_give_up(h: Harness, raw_bot: Bot) -> None:
    await h.app.notifier.send(1001, "flaky", key="digest:1")  # type: ignore[union-attr]
    await h.app.notifier.send(1002, "doomed", key="digest:2")  # type: ignore[union-attr]
    clock = Clock()
    s = sender(h, raw_bot, clock, max_attempts=3, backoff_base=2, chat_interval=0)
    h.telegram.fail("sendMessage", 502, "Bad Gateway", times=1)
    await s.send_next()  # digest:1 fails once
    row = (await rows(h))["digest:1"]
    assert row.status == "pending" and row.attempts == 1 and "Bad Gateway" in (row.error or "")
    assert row.next_attempt_at == clock.now + timedelta(seconds=2)
    await s.drain()  # digest:2 goes; digest:1 is not due yet
    assert to(h, 1002) == ["doomed"] and to(h, 1001) == []
    clock.advance(2)
    await s.drain()
    assert to(h, 1001) == ["flaky"]
    # a message Telegram keeps refusing with 5xx is given up after max_attempts
    await h.app.notifier.send(1002, "never", key="digest:3")  # type: ignore[union-attr]
    h.telegram.fail("sendMessage", 500, "Internal Server Error", times=10)
    for wait in (0, 2, 4):
        clock.advance(wait)
        await s.drain()
    row = (await rows(h))["digest:3"]
    assert row.status == "failed" and row.attempts == 3
    # a message Telegram rejects (400) is not retried
    h.telegram.failures.clear()
    await h.app.notifier.send(1002, "<b>broken", key="digest:4")  # type: ignore[union-attr]
    h.telegram.fail("sendMessage", 400, "Bad Request: can't parse entities")
    await s.drain()
    assert (await rows(h))["digest:4"].status == "failed"


async def test_refused_connection_is_retried_but_a_timeout_is_never_resent(h: Harness) -> None:
    await h.app.notifier.send(1001, "while down", key="alert:net:1")  # type: ignore[union-attr]
    down = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(f"http://127.0.0.1:{free_port()}")))
    clock = Clock()
    try:
        await sender(h, down, clock, chat_interval=0).send_next()
    finally:
        await down.session.close()
    row = (await rows(h))["alert:net:1"]
    assert row.status == "pending" and row.attempts == 1  # never reached Telegram: safe to retry
    clock.advance(60)
    up = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(h.telegram.url)))
    try:
        await sender(h, up, clock, chat_interval=0).drain()
    finally:
        await up.session.close()
    assert to(h, 1001) == ["while down"]

    # a request that timed out may have been delivered: kept as unknown, never resent
    await h.app.notifier.send(1002, "slow", key="alert:net:2")  # type: ignore[union-attr]

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # the request arrives; no answer comes before the client gives up
        await asyncio.sleep(2)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    slow = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(f"http://127.0.0.1:{port}"), timeout=0.3))
    try:
        await sender(h, slow, clock, chat_interval=0).drain()
    finally:
        await slow.session.close()
        server.close()
    row = (await rows(h))["alert:net:2"]
    assert row.status == "unknown" and "timeout" in (row.error or "").lower()
    clock.advance(3600)
    await sender(h, raw_bot, clock, chat_interval=0).drain()
    assert to(h, 1002) == []  # never resent


async def test_a_crash_in_flight_never_resends(h: Harness, raw_bot: Bot) -> None:
    """Claim committed, then the process dies before the answer: the row is unknown, never sent again."""
    clock = Clock()
    await h.app.notifier.send(1001, "in flight", key="alert:c:1")  # type: ignore[union-attr]
    await h.app.notifier.send(1001, "next", key="alert:c:2")  # type: ignore[union-attr]
    async with h.app.sessionmaker() as session:
        repo = SqlOutboxRepository(session)
        (first, _), *_ = await repo.candidates(clock.now, 10)
        assert await repo.claim(first, clock.now) is not None
        await session.commit()
    s = sender(h, raw_bot, clock, chat_interval=0)
    assert await s.recover() == 0  # a fresh claim may still be in flight elsewhere
    clock.advance(301)
    assert await s.recover() == 1
    await s.drain()
    assert to(h, 1001) == ["next"]
    stored = await rows(h)
    assert stored["alert:c:1"].status == "unknown" and stored["alert:c:2"].status == "sent"


async def test_two_senders_never_send_the_same_row(h: Harness, raw_bot: Bot) -> None:
    for user in (1001, 1002, 1003):
        for i in range(4):
            await h.app.notifier.send(user, f"m{user}-{i}", key=f"signal:{user}:{i}")  # type: ignore[union-attr]
    clock = Clock()
    a, b = sender(h, raw_bot, clock, chat_interval=0), sender(h, raw_bot, clock, chat_interval=0)
    await asyncio.gather(a.drain(), b.drain())
    texts = [c.text for c in h.telegram.sent()]
    assert sorted(texts) == sorted(f"m{u}-{i}" for u in (1001, 1002, 1003) for i in range(4))


async def test_depth_lag_and_retention(h: Harness, raw_bot: Bot) -> None:
    clock = Clock()
    async with h.app.sessionmaker() as session:
        repo = SqlOutboxRepository(session)
        assert (await repo.depth()).waiting == 0
        await repo.add(Message("alert:d:1", 1001, "old", Kind.ALERT), clock.now - timedelta(days=20))
        await repo.add(Message("alert:d:2", 1001, "new", Kind.ALERT), clock.now)
        await session.commit()
        depth = await repo.depth()
        assert depth.waiting == 2 and depth.oldest == clock.now - timedelta(days=20)
    await sender(h, raw_bot, clock, chat_interval=0).drain()
    async with h.app.sessionmaker() as session:
        repo = SqlOutboxRepository(session)
        assert (await repo.depth()).waiting == 0
        assert await repo.purge(clock.now - timedelta(days=14)) == 1
        await session.commit()
        assert set((await repo.counts()).items()) == {("sent", 1)}
    figures = await h.app.ops.figures()
    assert figures.outbox_depth == 0
    assert Status.SENT.value == "sent"


async def test_status_and_admin_show_the_queue(h: Harness) -> None:
    await h.app.notifier.send(1001, "waiting", key="digest:q:1")  # type: ignore[union-attr]
    await h.app.notifier.send(1002, "waiting too", key="digest:q:2")  # type: ignore[union-attr]
    h.app.ops._last = None  # the figures are cached for a few seconds
    assert "Notification queue: 2 waiting" in (await h.send("/status", user=1001))[-1].text
    await h.app.drain_outbox(h.bot)
    h.app.ops._last = None
    assert "Notification queue: empty" in (await h.send("/status", user=1001))[-1].text


async def test_a_fired_alert_and_its_message_are_one_transaction(h: Harness, raw_bot: Bot) -> None:
    clock = ManualClock(START)
    runtime = h.app.market
    runtime.hub.use_clock(clock)
    price = (await runtime.hub.tick("EURUSD")).bid
    level = round(price + 0.0004, 5)
    await h.send(f"/alerts add EURUSD > {level}", user=1001, lang="ru")
    await h.send(f"/alerts add EURUSD > {level}", user=1002)
    await h.press("cfg:notify:alerts", user=1002)  # user 1002 muted price alerts
    delivery = runtime.attach_outbox(h.app.i18n)
    for _ in range(2000):
        clock.advance(5)
        await runtime.feed.poll_once()
        await runtime.evaluator.flush()
        if delivery.sent:
            break
    assert delivery.sent == 1 and delivery.skipped == 1
    stored = await rows(h)
    assert [(r.user_id, r.kind, r.status) for r in stored.values()] == [(1001, "alert", "pending")]
    h.telegram.calls.clear()
    await sender(h, raw_bot, Clock(), chat_interval=0).drain()
    fired = h.telegram.sent()
    assert len(fired) == 1 and "EURUSD" in fired[0].text and "Price" not in fired[0].text  # in Russian
    assert fired[0].buttons
    # the trigger and the outbox agree: the same firing replayed (a restart) records and queues nothing more
    _, alert_id, time_msc = next(iter(stored)).split(":")
    async with UnitOfWork(h.app.sessionmaker) as uow:
        rule = await uow.trading.alert(int(alert_id))
    assert rule is not None
    assert not await delivery.persist(AlertFired(rule, price, int(time_msc), Direction.UP))
    assert len(await rows(h)) == 1


async def test_a_stopping_sender_finishes_the_message_in_flight_and_claims_no_other(h: Harness, raw_bot: Bot) -> None:
    for i in range(3):
        await h.app.notifier.send(1001 + i, f"m{i}", key=f"alert:s:{i}")  # type: ignore[union-attr]
    s = sender(h, raw_bot, Clock(), chat_interval=0)
    task = asyncio.create_task(s.run_forever(idle=0.01))
    await asyncio.sleep(0)  # it is free to start
    await s.stop()
    await asyncio.wait_for(task, 5)  # run_forever returns by itself
    statuses = [r.status for r in (await rows(h)).values()]
    assert "sending" not in statuses and statuses.count("sent") == len(h.telegram.sent())
