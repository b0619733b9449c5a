"""Deletes a message typed at a secret form step before anything else reads it.

The step is declared with :class:`bot.secret_state.SecretState`. The message is
deleted whatever it looks like (a password may start with ``/``) and even when a
gate or a failure stops the update later. When Telegram refuses the deletion (the
bot is not allowed to delete in that chat), the user is told to delete it
themselves: a credential must not stay in a chat silently.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update
from aiogram.utils.i18n import I18n

from bot.i18n import locale_of
from bot.secret_state import secret_input
from bot.views.fallback import secret_not_deleted

log = logging.getLogger(__name__)


class SecretInputMiddleware(BaseMiddleware):
    def __init__(self, i18n: I18n) -> None:
        self._i18n = i18n

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        message = event.message
        if message is None or not secret_input(event, data.get("raw_state")):
            return await handler(event, data)
        bot: Bot = data["bot"]
        try:
            await bot.delete_message(message.chat.id, message.message_id)
            deleted = True
        except TelegramAPIError as exc:  # the message itself is never part of the log line
            log.warning("could not delete a message typed at a secret step: %s", type(exc).__name__)
            deleted = False
        try:
            return await handler(event, data)
        finally:
            if not deleted:
                locale = locale_of(data.get("user"), data.get("event_from_user"))
                with self._i18n.context(), self._i18n.use_locale(locale):
                    text = secret_not_deleted()
                try:
                    await bot.send_message(message.chat.id, text)
                except TelegramAPIError:
                    log.warning("could not tell the user to delete a secret message", exc_info=True)
