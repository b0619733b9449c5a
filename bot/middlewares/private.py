"""Account and money commands stay out of groups.

A command declared ``private=True`` in the registry (``handlers/__init__.py``),
and every button of it, is served in a private chat with the bot only. In a
group, a channel or an inline message the bot says so (localized) and nothing
runs: a trader's balance, positions or payments are never posted where others
read, and no form there can ask for a password.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.enums import ChatType
from aiogram.types import CallbackQuery, TelegramObject, Update

from bot.middlewares.common import interactive, notify
from bot.middlewares.tiers import PARSED_COMMAND, command_of
from bot.registry import Registry
from bot.views.fallback import private_only


class PrivateChatMiddleware(BaseMiddleware):
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        target = interactive(event)
        command = command_of(self._registry, event) if target is not None else None
        if command is None or not command.private or _in_private_chat(target):
            if target is not None:
                data[PARSED_COMMAND] = command  # the tier gate, next, takes it instead of parsing again
            return await handler(event, data)
        await notify(data["bot"], target, private_only(command.name))  # type: ignore[arg-type]
        return None


def _in_private_chat(event: object) -> bool:
    if isinstance(event, CallbackQuery):  # an inline-mode message has no chat: not private either
        message = event.message
        return message is not None and message.chat.type == ChatType.PRIVATE
    chat = getattr(event, "chat", None)
    return chat is not None and chat.type == ChatType.PRIVATE
