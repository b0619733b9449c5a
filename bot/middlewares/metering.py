"""Records each handled command (typed or pressed) as a usage event."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject

from domain.metering import Meter, UsageKind


class MeteringMiddleware(BaseMiddleware):
    def __init__(self, meter: Meter) -> None:
        self._meter = meter

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        result = await handler(event, data)
        command = data.get("command")
        user = data.get("user")
        if command is not None and user is not None and result is not UNHANDLED:
            self._meter.record(user.id, UsageKind.COMMAND, command.name)
        return result
