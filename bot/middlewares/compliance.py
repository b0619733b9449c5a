"""The disclosure gate: trading commands stay locked until the current risk disclosure is accepted.

Placed after the tier gate: a command the plan does not include says so first;
one the plan includes asks for the disclosure. Which commands trade is read
from the registry (Category.TRADING), so a new trading command is gated the
day it is declared.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

from bot.middlewares.common import interactive, notify
from bot.registry import Category, Command
from bot.views import View
from bot.views.compliance import disclosure_gate
from domain.compliance import ComplianceService, ComplianceUnit
from domain.users import User


class ComplianceGateMiddleware(BaseMiddleware):
    def __init__(self, registry: object, compliance: ComplianceService) -> None:
        self._compliance = compliance

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        command: Command | None = data.get("command")
        user: User | None = data.get("user")
        target = interactive(event)
        if command is None or user is None or target is None:
            return await handler(event, data)
        refusal = await disclosure_refusal(self._compliance, data["uow"], command, user)
        if refusal is None:
            return await handler(event, data)
        text, markup = refusal
        await notify(data["bot"], target, text, markup)
        return None


async def disclosure_refusal(
    compliance: ComplianceService, uow: ComplianceUnit, command: Command, user: User
) -> View | None:
    """What the disclosure gate answers when ``user`` may not use ``command`` yet (None: they may).

    The one rule for typed commands, their buttons and the dialog actions that do the same thing
    (dialogs/common.py DialogGuard).
    """
    if command.category != Category.TRADING or await compliance.trading_unlocked(uow, user.id):
        return None
    return disclosure_gate()
