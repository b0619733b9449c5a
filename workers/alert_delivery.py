"""Delivers fired price alerts to their owners.

In production (``persist``) a firing and its notification are one
transaction: the alert's trigger is recorded AND the rendered message is
queued in the notification outbox together, so a crash can neither lose the
message of a recorded firing nor record a message for a firing that did not
persist (the evaluator then fires again after a restart, under the same key).
The outbox sender delivers it (workers/outbox.py). ``notify`` is the older
path — persist first, then hand the message to any :class:`bot.notify.Notifier`
— kept for tools and tests that attach a bot directly.
Users who switched price-alert notifications off (or blocked the bot) are skipped.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.notify import DirectNotifier, Notifier
from bot.views import View
from bot.views.market import alert_fired_view
from domain.alerts.models import AlertFired
from domain.clock import utcnow
from domain.db.outbox import SqlOutboxRepository
from domain.db.repositories import SqlUserRepository
from domain.db.trading import mark_triggered_in
from domain.db.uow import UnitOfWork
from domain.outbox import Kind, Message, markup_json
from domain.users import Notify, User

log = logging.getLogger(__name__)


def alert_key(event: AlertFired) -> str:
    return f"alert:{event.rule.id}:{event.time_msc}"


class AlertDelivery:
    def __init__(
        self, target: Bot | Notifier | None, i18n: I18n, sessionmaker: async_sessionmaker[AsyncSession], hub: Any
    ) -> None:
        """``target``: where ``notify`` sends (a bot is wrapped in a DirectNotifier); None for ``persist`` only."""
        self._notifier = DirectNotifier(target) if isinstance(target, Bot) else target
        self._i18n = i18n
        self._sessionmaker = sessionmaker
        self._hub = hub
        self.on_queued: list[Any] = []  # wake-ups for the outbox sender after ``persist`` queued something
        self.sent = 0  # notifications handed over (queued in the outbox, or sent directly)
        self.skipped = 0

    async def _render(self, event: AlertFired, user: User) -> View:
        digits = await self._hub.digits(event.rule.symbol)
        with self._i18n.context(), self._i18n.use_locale(user.locale):
            return alert_fired_view(event, digits, user.timezone, self._hub.simulated)

    async def persist(self, event: AlertFired) -> bool:
        """The evaluator's persist step: record the firing and queue its message in one transaction."""
        rule = event.rule
        async with self._sessionmaker() as session:
            user = await SqlUserRepository(session).get(rule.user_id)
            view = await self._render(event, user) if user is not None and user.wants(Notify.ALERTS) else None
            if not await mark_triggered_in(session, rule.id, event.time_msc, event.price, event.final):
                await session.rollback()
                return False
            queued = False
            if view is not None and user is not None and not await SqlOutboxRepository(session).is_blocked(user.id):
                text, markup = view
                message = Message(alert_key(event), user.id, text, Kind.ALERT, markup_json(markup))
                queued = await SqlOutboxRepository(session).add(message, utcnow())
            await session.commit()
        if view is None:
            self.skipped += 1
        else:
            self.sent += 1
        if queued:
            for wake in self.on_queued:
                wake()
        return True

    async def notify(self, event: AlertFired) -> None:
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(event.rule.user_id)
        if user is None or not user.wants(Notify.ALERTS):
            self.skipped += 1
            return
        text, markup = await self._render(event, user)
        if self._notifier is not None and await self._notifier.send(user.id, text, markup, key=alert_key(event)):
            self.sent += 1
        else:
            log.warning("alert %s: could not deliver to the user", event.rule.id)
