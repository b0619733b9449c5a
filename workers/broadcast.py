"""The broadcast sender: drains each broadcast's outbox, paced under Telegram's limits.

Per message: wait for the pacer → commit the previous row's result together
with the claim of the next row → send → (next round). The claim is durable
before the request, so a crash never leads to a resend: on restart, rows left
``claimed`` become ``unknown`` (see domain/broadcast.py for the trade-off).
Flood control: bot/outgoing.py already retries a 429 a few times; if one still
surfaces here, the sender waits what Telegram asks and retries the same row
(it was not delivered). A user who blocked the bot (403) is marked and skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
)
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.views.staff import broadcast_message, broadcast_progress
from domain.broadcast import Broadcast, Delivery, Progress, Status
from domain.clock import utcnow
from domain.db.broadcast import SqlBroadcastRepository
from domain.db.repositories import SqlUserRepository

log = logging.getLogger(__name__)

DEFAULT_RATE = 25.0  # messages per second, all broadcasts together (Telegram allows about 30)
POLL_EVERY = 2.0
REPORT_EVERY = 500  # messages between progress edits
REPORT_INTERVAL = 10.0  # or seconds, whichever comes first


class Pacer:
    """At most ``rate`` events per second, evenly spaced."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = 0.0

    async def wait(self) -> None:
        now = self._clock()
        if self._next > now:
            await self._sleep(self._next - now)
            now = self._next
        self._next = now + self.interval

    async def pause(self, seconds: float) -> None:
        """Telegram asked us to wait (flood control): nothing goes out before then."""
        await self._sleep(seconds)
        self._next = self._clock() + self.interval


class BroadcastSender:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        bot: Bot,
        i18n: I18n,
        *,
        rate: float = DEFAULT_RATE,
        report_every: int = REPORT_EVERY,
        report_interval: float = REPORT_INTERVAL,
        pacer: Pacer | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._bot = bot
        self._i18n = i18n
        self._pacer = pacer or Pacer(rate)
        self._report_every = report_every
        self._report_interval = report_interval
        self._recovered = False

    async def run_forever(self, poll: float = POLL_EVERY) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("broadcast sender failed; retrying")
            await asyncio.sleep(poll)

    async def run_once(self) -> int:
        """Deliver every broadcast in progress; returns how many messages went out."""
        async with self._sessionmaker() as session:
            broadcasts = await SqlBroadcastRepository(session).sending()
            if not self._recovered:  # whatever a previous process left claimed is in doubt
                for b in broadcasts:
                    if n := await SqlBroadcastRepository(session).recover(b.id, utcnow()):
                        log.warning("broadcast %s: %s message(s) in flight at a crash, not resent", b.id, n)
                await session.commit()
                self._recovered = True
        sent = 0
        for broadcast in broadcasts:
            sent += await self.deliver(broadcast)
        return sent

    async def deliver(self, broadcast: Broadcast) -> int:
        async with self._sessionmaker() as session:
            try:
                return await self._drain(session, broadcast)
            except asyncio.CancelledError:
                # Stopped (or crashed, in tests): free the database at once. Rows left claimed are
                # recovered as "unknown" by the next sender, never resent.
                await asyncio.shield(self._release(session))
                raise

    @staticmethod
    async def _release(session: AsyncSession) -> None:
        with contextlib.suppress(Exception):
            await session.rollback()
        with contextlib.suppress(Exception):
            await session.close()

    async def _drain(self, session: AsyncSession, broadcast: Broadcast) -> int:
        sent = 0
        since_report, last_report = 0, time.monotonic()
        repo = SqlBroadcastRepository(session)
        previous: tuple[int, Delivery] | None = None
        while True:
            await self._pacer.wait()
            now = utcnow()
            if previous is not None:
                await repo.mark(previous[0], previous[1], now)
            claimed = await repo.claim_next(broadcast.id, now)
            await session.commit()  # the previous result and the next claim, durable before the request
            if claimed is None:
                break
            outbox_id, user_id = claimed
            status = await self._send(broadcast, user_id)
            if status == Delivery.BLOCKED:
                await repo.mark_blocked_user(user_id)
            sent += status == Delivery.SENT
            previous = (outbox_id, status)
            since_report += 1
            if since_report >= self._report_every or time.monotonic() - last_report >= self._report_interval:
                await repo.mark(outbox_id, status, utcnow())
                await session.commit()
                previous = None
                await self._report(session, broadcast, done=False)
                since_report, last_report = 0, time.monotonic()
        await repo.set(broadcast.id, status=Status.DONE.value, finished_at=utcnow())
        await session.commit()
        await self._report(session, broadcast, done=True)
        return sent

    async def _send(self, broadcast: Broadcast, user_id: int) -> Delivery:
        text, markup = broadcast_message(broadcast)
        while True:
            try:
                if broadcast.photo_file_id:
                    await self._bot.send_photo(user_id, broadcast.photo_file_id, caption=text, reply_markup=markup)
                else:
                    await self._bot.send_message(user_id, text, reply_markup=markup)
                return Delivery.SENT
            except TelegramRetryAfter as exc:  # still flooded after the session's own retries: same row again
                log.info("broadcast %s: flood control, waiting %ss", broadcast.id, exc.retry_after)
                await self._pacer.pause(exc.retry_after)
            except TelegramForbiddenError:
                return Delivery.BLOCKED
            except TelegramNetworkError:
                return Delivery.UNKNOWN  # the request may have arrived: never resent
            except (TelegramBadRequest, TelegramAPIError):
                return Delivery.FAILED

    async def _report(self, session: AsyncSession, broadcast: Broadcast, *, done: bool) -> None:
        repo = SqlBroadcastRepository(session)
        progress = Progress(broadcast.id, await repo.counts(broadcast.id))
        admin = await SqlUserRepository(session).get(broadcast.admin_id)
        locale = admin.locale if admin else "en"
        with self._i18n.context(), self._i18n.use_locale(locale):
            text = broadcast_progress(progress, done=done)
        current = await repo.get(broadcast.id)
        message_id = current.progress_message_id if current else None
        try:
            if message_id is not None:
                await self._bot.edit_message_text(text, chat_id=broadcast.admin_id, message_id=message_id)
            else:
                message = await self._bot.send_message(broadcast.admin_id, text)
                await repo.set(broadcast.id, progress_message_id=message.message_id)
                await session.commit()
        except TelegramAPIError:
            log.info("broadcast %s: progress not shown to the admin", broadcast.id, exc_info=True)
