"""Proactive messages: the one door through which workers message a user.

Workers render a view in the user's language and hand it to a :class:`Notifier`
with a de-duplication ``key`` (same key, same message: sent at most once).
Start the key with its kind (``alert:…``, ``signal:…``, ``digest:…``,
``ticket:…``, ``billing:…``, ``autotrade:…``): the outbox files it under that
kind. :class:`OutboxNotifier` (what ``App.notifier`` is) stores the message in
the persisted outbox and the sender (workers/outbox.py) delivers it, paced;
:class:`DirectNotifier` sends at once (tests, tools).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardMarkup
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.clock import Clock, utcnow
from domain.db.outbox import SqlOutboxRepository
from domain.db.uow import UnitOfWork
from domain.outbox import Message, kind_of, markup_json

log = logging.getLogger(__name__)


class Notifier(Protocol):
    async def send(
        self, user_id: int, text: str, markup: InlineKeyboardMarkup | None = None, *, key: str,
        within: UnitOfWork | None = None,
    ) -> bool:  # fmt: skip
        """Queue or send one message; False when it cannot be delivered. ``within``: queue it in that
        unit of work's transaction, so it goes out if and only if the change that caused it commits."""
        ...


class DirectNotifier:
    """Sends immediately through the bot; remembers keys for this process only."""

    def __init__(self, bot: Bot, remember: int = 10_000) -> None:
        self._bot = bot
        self._seen: dict[str, None] = {}
        self._remember = remember

    async def send(
        self, user_id: int, text: str, markup: InlineKeyboardMarkup | None = None, *, key: str,
        within: UnitOfWork | None = None,
    ) -> bool:  # fmt: skip
        if key in self._seen:
            return True
        try:
            await self._bot.send_message(user_id, text, reply_markup=markup)
        except TelegramAPIError:
            log.warning("notification %s: could not deliver to the user", key, exc_info=True)
            return False
        self._seen[key] = None
        if len(self._seen) > self._remember:
            self._seen.pop(next(iter(self._seen)))
        return True


class OutboxNotifier:
    """Stores the message in the notification outbox (its own short transaction) and wakes the sender.

    Returns False, storing nothing, for a user who blocked the bot; True once
    the message is queued, or when the key was already queued (sent at most
    once). ``on_queued`` is called after each commit (the sender's wake-up).
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], *, clock: Clock = utcnow) -> None:
        self._sessionmaker = sessionmaker
        self._clock = clock
        self.on_queued: list[Callable[[], None]] = []

    async def send(
        self, user_id: int, text: str, markup: InlineKeyboardMarkup | None = None, *, key: str,
        within: UnitOfWork | None = None,
    ) -> bool:  # fmt: skip
        message = Message(key, user_id, text, kind_of(key), markup_json(markup))
        if within is not None:
            repo = SqlOutboxRepository(within.session)
            if await repo.is_blocked(user_id):
                return False
            if await repo.add(message, self._clock()):
                within.after_commit(self._wake)
            return True
        async with self._sessionmaker() as session:
            repo = SqlOutboxRepository(session)
            if await repo.is_blocked(user_id):
                return False
            added = await repo.add(message, self._clock())
            await session.commit()
        if added:
            self._wake()
        return True

    def _wake(self) -> None:
        for wake in self.on_queued:
            wake()
