"""Delivers fired price alerts to their owners through the bot.

The evaluator persists each firing before calling :meth:`AlertDelivery.notify`,
so a crash between the two loses at most a message, never fires twice.
Users who switched price-alert notifications off are skipped.
"""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.views.market import alert_fired_view
from domain.alerts.models import AlertFired
from domain.db.uow import UnitOfWork
from domain.users import Notify

log = logging.getLogger(__name__)


class AlertDelivery:
    def __init__(self, bot: Bot, i18n: I18n, sessionmaker: async_sessionmaker[AsyncSession], hub: Any) -> None:
        self._bot = bot
        self._i18n = i18n
        self._sessionmaker = sessionmaker
        self._hub = hub
        self.sent = 0
        self.skipped = 0

    async def notify(self, event: AlertFired) -> None:
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(event.rule.user_id)
        if user is None or not user.wants(Notify.ALERTS):
            self.skipped += 1
            return
        digits = await self._hub.digits(event.rule.symbol)
        with self._i18n.context(), self._i18n.use_locale(user.locale):
            text, markup = alert_fired_view(event, digits, user.timezone)
        try:
            await self._bot.send_message(user.id, text, reply_markup=markup)
            self.sent += 1
        except TelegramAPIError:
            log.warning("alert %s: could not deliver to the user", event.rule.id, exc_info=True)
