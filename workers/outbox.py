"""The outbox sender: delivers the notification outbox (domain/outbox.py), paced under Telegram's limits.

One message at a time: wait for the global pacer → pick the oldest due row
whose chat may receive now (per-chat FIFO: a chat's second message never
overtakes its first) → commit its claim → one HTTP request → commit the
result. So the in-flight window is exactly one request (see domain/outbox.py
for the trade-off), and several senders (one per worker process) never take
the same row: the claim is a conditional UPDATE, and on PostgreSQL the
candidate scan skips rows another sender holds (FOR UPDATE SKIP LOCKED).

Pacing: a global rate shared with the broadcast sender of the same process
(``Pacer``), one message per ``chat_interval`` to a private chat and
``group_per_minute`` to a group, counted from each request's answer (a late
answer, or a 429 waited out inside the request, must not bring the chat's next
message closer). A pick looks past chats that may not receive yet (pages of
``SCAN`` rows), so one chat's backlog never holds up the others; when every due
row's chat is cooling down, the sender waits until the soonest may receive,
not a whole idle poll. A 429 that survives bot/outgoing.py's own short retries
defers the chat's rows and pauses the sender for what Telegram asked. 403
flags the user as blocked and drops what waits for them.
Several worker processes each pace themselves: run one sender per
deployment (the worker) to keep the global rate exact.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.clock import Clock, utcnow
from domain.db.outbox import SqlOutboxRepository
from domain.outbox import STALE_CLAIM, Message, Outcome, Pacing, Status
from workers.broadcast import Pacer

log = logging.getLogger(__name__)

SCAN = 200  # due rows looked at per page of a pick
MAX_PAGES = 5  # pages per pick, each past the chats the previous ones held (cooling down, FIFO)
IDLE_POLL = 1.0  # seconds between scans when nothing is due (a notifier's wake-up comes sooner)


class Pacers:
    """Several pacers as one: waits for each (e.g. the broadcast rate and the process's global rate)."""

    def __init__(self, *pacers: Pacer) -> None:
        self._pacers = pacers

    async def wait(self) -> None:
        for pacer in self._pacers:
            await pacer.wait()

    async def pause(self, seconds: float) -> None:
        await asyncio.gather(*(p.pause(seconds) for p in self._pacers))


class OutboxSender:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bot: Bot,
        pacing: Pacing | None = None,
        *,
        pacer: Pacer | None = None,
        clock: Clock = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._bot = bot
        self.pacing = pacing or Pacing()
        self._pacer = pacer or Pacer(self.pacing.global_rate)
        self._clock = clock
        self._monotonic = monotonic
        self._sleep = sleep
        self._chat_next: dict[int, float] = {}
        self._cooling_until: float | None = None  # when the soonest chat the last pick skipped may receive again
        self._wake = asyncio.Event()
        self._in_flight = asyncio.Lock()  # held from a claim to its acknowledgement
        self._stopping = False
        self.counts: dict[str, int] = {o.value: 0 for o in Outcome}

    def wake(self) -> None:
        """Something was queued: look now instead of at the next poll."""
        self._wake.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown: finish the message in flight (no ``unknown`` row), claim no other."""
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(self._in_flight.acquire(), timeout)
        except TimeoutError:
            log.warning("outbox: a message was still in flight at shutdown")
            return
        self._in_flight.release()

    async def run_forever(self, idle: float = IDLE_POLL) -> None:
        while not self._stopping:
            try:
                await self.recover()
                while not self._stopping:
                    if not await self.send_next():
                        self._wake.clear()
                        try:
                            await asyncio.wait_for(self._wake.wait(), self.idle_for(idle))
                        except TimeoutError:
                            pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox sender failed; retrying")
                await asyncio.sleep(idle)

    def idle_for(self, idle: float = IDLE_POLL) -> float:
        """How long to wait after a pick found nothing: until the soonest skipped chat may receive again
        (a chat's next message goes at its pace, not at the next poll), at most ``idle``."""
        if self._cooling_until is None:
            return idle
        return min(idle, max(0.0, self._cooling_until - self._monotonic()))

    async def recover(self, stale: timedelta = STALE_CLAIM) -> int:
        async with self._sessionmaker() as session:
            n = await SqlOutboxRepository(session).recover(self._clock() - stale)
            await session.commit()
        if n:
            log.warning("outbox: %d message(s) were in flight when their sender stopped: kept as unknown", n)
        return n

    async def drain(self, *, paced: bool = False) -> int:
        """Send everything due now; returns how many were handled (tests, shutdown). Unpaced unless asked."""
        handled = 0
        while await self.send_next(paced=paced):
            handled += 1
        return handled

    async def send_next(self, *, paced: bool = True) -> bool:
        """Claim and send one due message; False when none may go now."""
        if paced:
            await self._pacer.wait()
        async with self._in_flight:
            if self._stopping:
                return False
            handled, flood_wait = await self._claim_and_send(paced=paced)
        if flood_wait is not None and paced:  # Telegram asked the whole bot to wait
            await self._pacer.pause(flood_wait)
        return handled

    async def _claim_and_send(self, *, paced: bool) -> tuple[bool, float | None]:
        async with self._sessionmaker() as session:
            repo = SqlOutboxRepository(session)
            message = await self._claim(repo, paced=paced)
            await session.commit()  # the claim is durable before the request
        if message is None:
            return False, None
        outcome, error, retry_after = await self._send(message)
        # The chat's pace counts from when the request was answered, not claimed: a slow answer, or
        # bot/outgoing.py waiting out a 429 and retrying, must not bring the chat's next message closer.
        self._chat_next[message.chat_id] = self._monotonic() + self.pacing.interval_for(message.chat_id)
        self.counts[outcome.value] += 1
        now = self._clock()
        async with self._sessionmaker() as session:
            repo = SqlOutboxRepository(session)
            if outcome is Outcome.SENT:
                await repo.finish(message.id, Status.SENT, now)
            elif outcome is Outcome.BLOCKED:
                await repo.finish(message.id, Status.BLOCKED, now, error)
                dropped = await repo.block_user(message.chat_id)
                log.info("outbox: user %s blocked the bot; %d waiting message(s) dropped", message.chat_id, dropped)
            elif outcome is Outcome.RETRY and (retry_after is not None or message.attempts < self.pacing.max_attempts):
                wait = (
                    timedelta(seconds=retry_after) if retry_after is not None else self.pacing.backoff(message.attempts)
                )
                await repo.retry(message.id, now + wait, error or "")
                if retry_after is not None:
                    await repo.defer_chat(message.chat_id, now + wait)
            elif outcome is Outcome.UNKNOWN:
                await repo.finish(message.id, Status.UNKNOWN, now, error)
            else:
                await repo.finish(message.id, Status.FAILED, now, error)
            await session.commit()
        return True, retry_after

    async def _claim(self, repo: SqlOutboxRepository, *, paced: bool) -> Message | None:
        now, tick = self._clock(), self._monotonic()
        seen: set[int] = set()
        self._cooling_until = None
        for _ in range(MAX_PAGES):
            page = await repo.candidates(now, SCAN, skip_chats=seen)
            for outbox_id, chat_id in page:
                if chat_id in seen:
                    continue  # FIFO per chat: only its oldest due row may go
                seen.add(chat_id)
                if paced and (free_at := self._chat_next.get(chat_id, 0.0)) > tick:
                    self._cooling_until = free_at if self._cooling_until is None else min(free_at, self._cooling_until)
                    continue
                message = await repo.claim(outbox_id, now)
                if message is not None:
                    self._chat_next[chat_id] = tick + self.pacing.interval_for(chat_id)
                    if len(self._chat_next) > 10_000:
                        self._chat_next = {c: t for c, t in self._chat_next.items() if t > tick}
                    return message
            if len(page) < SCAN:
                break  # every due row was looked at
            # A full page of chats that may not receive now (a backlog for one chat, a busy group):
            # look past them, or the rows of every other chat would wait behind theirs.
        return None

    async def _send(self, message: Message) -> tuple[Outcome, str | None, float | None]:
        """(outcome, error, retry_after) of one request; never raises."""
        try:
            markup = InlineKeyboardMarkup.model_validate(message.markup) if message.markup else None
            await self._bot.send_message(message.chat_id, message.text, reply_markup=markup)
            return Outcome.SENT, None, None
        except TelegramRetryAfter as exc:
            log.info("outbox: flood control for %s, waiting %ss", message.chat_id, exc.retry_after)
            return Outcome.RETRY, f"429: {exc.message}", float(exc.retry_after)
        except TelegramForbiddenError as exc:
            return Outcome.BLOCKED, f"403: {exc.message}", None
        except TelegramServerError as exc:
            return Outcome.RETRY, f"5xx: {exc.message}", None
        except TelegramNetworkError as exc:
            # A refused connection never reached Telegram: safe to retry. A timeout or a connection
            # lost mid-request may have delivered it: never resent (at-most-once, domain/outbox.py).
            if exc.message.startswith(("ClientConnectorError", "ClientConnectorDNSError")):
                return Outcome.RETRY, f"network: {exc.message}", None
            return Outcome.UNKNOWN, f"network: {exc.message}", None
        except TelegramBadRequest as exc:
            return Outcome.FAILED, f"400: {exc.message}", None
        except TelegramAPIError as exc:
            return Outcome.RETRY, f"{type(exc).__name__}: {exc.message}", None
        except Exception as exc:  # a malformed stored markup, say: it will not get better
            log.exception("outbox: message %s cannot be sent", message.key)
            return Outcome.FAILED, f"{type(exc).__name__}: {exc}", None
