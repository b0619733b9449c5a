"""The tier gate: a locked command answers with what it needs and an upgrade button."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

from bot.middlewares.common import interactive, notify
from bot.registry import Command, Registry
from bot.views import View
from bot.views.plans import locked_view
from domain.tiers import Tier, TierCatalog

PARSED_COMMAND = "_parsed_command"  # data key: the command the private-chat gate already parsed


class TierGateMiddleware(BaseMiddleware):
    def __init__(self, registry: Registry, tiers: TierCatalog) -> None:
        self._registry = registry
        self._tiers = tiers

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        command = data.pop(PARSED_COMMAND) if PARSED_COMMAND in data else command_of(self._registry, event)
        data["command"] = command  # what the disclosure gate, metering and observability read
        tier: Tier | None = data.get("tier")
        if command is None or not command.gated or tier is None:
            return await handler(event, data)
        refusal = tier_refusal(self._registry, self._tiers, command, tier)
        if refusal is None:
            return await handler(event, data)
        text, markup = refusal
        await notify(data["bot"], interactive(event), text, markup)  # type: ignore[arg-type]
        return None


def tier_refusal(registry: Registry, tiers: TierCatalog, command: Command, tier: Tier) -> View | None:
    """What the tier gate answers when ``tier`` may not use ``command`` (None: it may).

    The one rule for typed commands, their buttons and the dialog actions that do the same thing
    (dialogs/common.py DialogGuard).
    """
    if not command.gated or registry.allowed(command, tier, tiers):
        return None
    return locked_view(command, registry.required_tier(command, tiers))


def command_of(registry: Registry, update: Update) -> Command | None:
    """The registry command an update invokes (typed, captioned or pressed): what every gate decides on."""
    if update.message is not None:
        return registry.for_message(update.message)
    if update.callback_query is not None:
        return registry.for_callback(update.callback_query.data)
    return None
