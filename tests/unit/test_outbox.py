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
from aiogram.exceptions import TelegramRetryAfter
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
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
from tests.fakes.telegram import TOKEN, FakeTelegram, FloodControl
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

    def catch_up(self) -> None:
        """Not behind the real time a message queued later was stamped with (a slow machine gets there)."""
        self.now = max(self.now, datetime.now(UTC) + timedelta(seconds=1))


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
    clock.catch_up()
    h.telegram.fail("sendMessage", 500, "Internal Server Error", times=10)
    for wait in (0, 2, 4):
        clock.advance(wait)
        await s.drain()
    row = (await rows(h))["digest:3"]
    assert row.status == "failed" and row.attempts == 3
    # a message Telegram rejects (400) is not retried
    h.telegram.failures.clear()
    await h.app.notifier.send(1002, "<b>broken", key="digest:4")  # type: ignore[union-attr]
    clock.catch_up()
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


async def test_a_cooling_chat_is_served_at_its_pace_not_at_the_next_poll(h: Harness, raw_bot: Bot) -> None:
    """Nothing else due: the sender waits until the chat may receive again (1 s private, 3 s group), not a poll."""
    group = -1001234567890
    for i in range(2):
        await h.app.notifier.send(1001, f"p{i}", key=f"alert:cool:p{i}")  # type: ignore[union-attr]
        await h.app.notifier.send(group, f"g{i}", key=f"signal:cool:g{i}")  # type: ignore[union-attr]
    clock = Clock()
    s = sender(h, raw_bot, clock, chat_interval=1.0, group_per_minute=20)
    assert s.idle_for(5.0) == 5.0  # nothing skipped yet: a plain poll
    assert await s.send_next() and await s.send_next()  # p0 and g0
    assert not await s.send_next()  # p1 and g1 are due, their chats are cooling down
    assert s.idle_for(5.0) == pytest.approx(1.0)  # the private chat frees first
    clock.advance(0.25)
    assert s.idle_for(5.0) == pytest.approx(0.75) and s.idle_for(0.5) == 0.5
    clock.advance(0.75)
    assert await s.send_next() and not await s.send_next()  # p1 goes; g1 still waits
    assert s.idle_for(5.0) == pytest.approx(2.0)  # 20 per minute: 3 s after g0
    clock.advance(2.0)
    assert await s.send_next()
    assert to(h, 1001) == ["p0", "p1"] and to(h, group) == ["g0", "g1"]
    assert not await s.send_next() and s.idle_for(5.0) == 5.0  # nothing waits: back to polling


async def test_a_chat_with_a_long_backlog_does_not_hold_up_the_others(
    h: Harness, raw_bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The oldest due rows all belong to one cooling chat (an alert storm, a busy group): others still go."""
    monkeypatch.setattr("workers.outbox.SCAN", 3)  # a scan page holds only the backlog's rows
    for i in range(7):
        await h.app.notifier.send(1001, f"storm{i}", key=f"alert:storm:{i}")  # type: ignore[union-attr]
    await h.app.notifier.send(1002, "meanwhile", key="alert:other:1")  # type: ignore[union-attr]
    await h.app.notifier.send(1003, "also", key="alert:other:2")  # type: ignore[union-attr]
    clock = Clock()
    s = sender(h, raw_bot, clock, chat_interval=1.0)
    assert await s.send_next()  # storm0
    assert await s.send_next() and await s.send_next()  # 1002 and 1003, behind the backlog, go now
    assert not await s.send_next()
    assert to(h, 1001) == ["storm0"] and to(h, 1002) == ["meanwhile"] and to(h, 1003) == ["also"]
    assert s.idle_for(5.0) == pytest.approx(1.0)
    clock.advance(1.0)
    assert await s.send_next() and not await s.send_next()
    assert to(h, 1001) == ["storm0", "storm1"]



async def test_a_chats_pace_counts_from_the_answer_not_the_claim(h: Harness) -> None:
    """A request answered late (slow, or bot/outgoing.py waiting out a 429 and retrying) does not let the
    chat's next message follow it at once."""
    clock = Clock()

    class Slow(BaseRequestMiddleware):
        async def __call__(self, make_request, bot, method):  # type: ignore[no-untyped-def]
            clock.advance(1.5)  # the answer comes 1.5 s after the claim
            return await make_request(bot, method)

    slow = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(h.telegram.url)))
    slow.session.middleware(Slow())
    for i in range(2):
        await h.app.notifier.send(1001, f"s{i}", key=f"alert:slow:{i}")  # type: ignore[union-attr]
    s = sender(h, slow, clock, chat_interval=1.0)
    try:
        assert await s.send_next()
        assert not await s.send_next()  # 1.5 s after the claim, but only now answered: a second to wait
        assert s.idle_for(5.0) == pytest.approx(1.0)
        clock.advance(1.0)
        assert await s.send_next()
    finally:
        await slow.session.close()
    assert to(h, 1001) == ["s0", "s1"]


# --- the Bot API stand-in's flood control (opt-in, what bench/load.py's outbox phase runs against) ----------


def test_flood_control_enforces_telegrams_limits() -> None:
    now = [0.0]
    flood = FloodControl(global_rate=30, chat_rate=1.0, chat_burst=3, group_per_minute=20, clock=lambda: now[0])
    assert [flood.admit(1001) for _ in range(4)] == [None, None, None, 1]  # a burst of 3, then 1 per second
    now[0] += 1.0
    assert flood.admit(1001) is None and flood.admit(1001) == 1
    assert all(flood.admit(-100) is None for _ in range(20)) and flood.admit(-100) == 60  # 20 per minute
    now[0] += 30.0
    assert flood.admit(-100) == 30  # the window slides: the first of the 20 leaves it at 60 s
    assert all(flood.admit(2000 + i) is None for i in range(30)) and flood.admit(5000) == 1  # 30 per second overall
    now[0] += 1.0
    assert flood.admit(5000) is None
    assert flood.refused == {"global": 1, "chat": 2, "group": 2}


async def test_the_stand_in_answers_429_in_telegrams_wire_format_only_when_asked() -> None:
    plain = await FakeTelegram().start()
    limited = await FakeTelegram(flood=FloodControl(chat_burst=1)).start()
    bots = [Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(t.url))) for t in (plain, limited)]
    try:
        for _ in range(3):
            await bots[0].send_message(1001, "no limits by default")
        await bots[1].send_message(1001, "first")
        with pytest.raises(TelegramRetryAfter) as flooded:
            await bots[1].send_message(1001, "too soon")
        assert flooded.value.retry_after == 1 and "Too Many Requests: retry after 1" in flooded.value.message
        await bots[1].send_message(1002, "another chat")
        assert [c.text for c in limited.sent()] == ["first", "another chat"] and len(plain.sent()) == 3
    finally:
        for bot in bots:
            await bot.session.close()
        await plain.stop()
        await limited.stop()


async def test_a_change_and_the_messages_it_causes_commit_together(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ticket answer and a billing notice are queued in their change's own transaction: a commit that
    fails stores neither the change nor its message; one that succeeds stores both."""
    from dataclasses import replace

    from bot.views.support import answer_for_user
    from domain.db.models import SubscriptionRow, TicketMessageRow
    from domain.support.tickets import SupportService, Ticket
    from domain.users import Role
    from handlers.support import deliver

    async def count(model: type) -> int:
        async with h.app.sessionmaker() as s:
            return len((await s.scalars(select(model))).all())

    async def crash() -> None:
        raise ConnectionError("the process died at commit")

    support, notifier, i18n = SupportService(), h.app.notifier, h.app.i18n
    assert notifier is not None
    async with UnitOfWork(h.app.sessionmaker) as uow:
        user, staff = await uow.users.get(1001), await uow.users.get(1002)
        assert user is not None and staff is not None
        ticket = await support.open(uow, user, h.app.tiers.get("free"), "other", "where is my signal?")
    staff = replace(staff, role=Role.SUPPORT)

    async def answer(uow: UnitOfWork) -> None:
        async def tell(t: Ticket) -> None:
            await deliver(notifier, i18n, uow, user, f"ticket:{t.id}:answer:test", answer_for_user, t, "on its way")

        await support.staff_reply(uow, staff, ticket.id, "on its way", announce=tell)

    async def trial(uow: UnitOfWork) -> None:
        await h.app.billing.start_trial(uow, user)

    for fails in (True, False):
        for action in (answer, trial):
            async with UnitOfWork(h.app.sessionmaker) as uow:
                if fails:
                    monkeypatch.setattr(uow, "commit", crash)
                try:
                    await action(uow)
                except ConnectionError:
                    assert fails
        assert sorted(r.kind for r in (await rows(h)).values()) == ([] if fails else ["billing", "ticket"])
        assert await count(TicketMessageRow) == (1 if fails else 2)
        assert await count(SubscriptionRow) == (0 if fails else 1)
