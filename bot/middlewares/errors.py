"""The outermost middleware: any exception becomes an ErrorDNA report and a localized answer.

The report's context says where it happened (the registered command, the button's
registered prefix, the form step, the kind of message) and never quotes what the
user typed: a form step may be collecting a password. What was typed at a secret
step (:mod:`bot.secret_state`) is handed to the reporter to be scrubbed wherever
an exception's own message might repeat it.
"""

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
from bot.registry import MENU_PREFIX, Registry
from bot.secret_state import secret_input
from domain.errors import DomainError

log = logging.getLogger(__name__)


class ErrorMiddleware(BaseMiddleware):
    def __init__(self, reporter: ErrorReporter, i18n: I18n, registry: Registry) -> None:
        self._reporter = reporter
        self._i18n = i18n
        self._registry = registry

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
            raw_state = data.get("raw_state")
            report = await self._reporter.report(
                exc, context=error_context(self._registry, event, raw_state), user_id=tg_user.id if tg_user else None,
                hide=secret_input(event, raw_state),
            )  # fmt: skip
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


def error_context(registry: Registry, update: Update, raw_state: str | None = None) -> str:
    """Where an error happened, in words the code chose: ``command:/trade``, ``callback:al``,
    ``message:text state=LinkForm:password``. Free text from the user never appears."""
    if update.message is not None:
        message = update.message
        typed = message.text if message.text is not None else message.caption
        if typed is not None and typed.startswith("/"):
            command = registry.for_text(typed)
            where = f"command:/{command.name}" if command is not None else "command:unknown"
        else:
            where = f"message:{message.content_type.value}"
        return f"{where} state={raw_state}" if raw_state else where
    if update.callback_query is not None:
        data = update.callback_query.data or ""
        command = registry.for_callback(data)
        if command is not None:
            prefix = data.partition(":")[0]
            return f"callback:{prefix}:{command.name}" if prefix == MENU_PREFIX else f"callback:{prefix}"
        return "callback:dialog" if "\x1d" in data else "callback:unknown"
    return update.event_type
