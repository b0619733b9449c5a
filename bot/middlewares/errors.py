"""The outermost middleware: any exception becomes an ErrorDNA report and a localized answer."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import TelegramObject, Update
from aiogram.utils.i18n import I18n

from bot.errors import ErrorReporter, user_message
from bot.i18n import locale_of
from bot.middlewares.common import interactive, notify
from domain.errors import DomainError

log = logging.getLogger(__name__)


class ErrorMiddleware(BaseMiddleware):
    def __init__(self, reporter: ErrorReporter, i18n: I18n) -> None:
        self._reporter = reporter
        self._i18n = i18n

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        try:
            return await handler(event, data)
        except Exception as exc:
            assert isinstance(event, Update)
            tg_user = data.get("event_from_user")
            report = await self._reporter.report(
                exc, context=_context(event), user_id=tg_user.id if tg_user else None
            )
            data["error_report"] = report  # for the payment inbox outside this layer (bot/middlewares/payments.py)
            target = interactive(event)
            if target is None:
                return None
            params = exc.params if isinstance(exc, DomainError) else None
            locale = locale_of(data.get("user"), tg_user)
            with self._i18n.context(), self._i18n.use_locale(locale):
                text = user_message(report, params)
            bot: Bot = data["bot"]
            try:
                await notify(bot, target, text)
            except Exception:  # Telegram itself failing: nothing more we can tell the user
                log.warning("could not deliver error %s to the user", report.ref, exc_info=True)
            return None


def _context(update: Update) -> str:
    if update.message is not None and update.message.text:
        return f"message:{update.message.text.split(maxsplit=1)[0][:48]}"
    if update.callback_query is not None:
        return f"callback:{(update.callback_query.data or '')[:48]}"
    return update.event_type
