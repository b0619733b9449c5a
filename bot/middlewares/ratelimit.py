"""Per-tier token bucket per user. Over the limit: one 'wait N s' answer, then silence."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, TelegramObject, Update
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.middlewares.common import interactive, notify
from domain.ratelimit import RateLimiter
from domain.tiers import Tier


class RateLimitMiddleware(BaseMiddleware):
    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        target = interactive(event)
        tier: Tier | None = data.get("tier")
        if target is None or tier is None:
            return await handler(event, data)
        decision = await self._limiter.hit(f"u:{data['user'].id}", tier.rate_per_minute, tier.burst)
        if decision.allowed:
            return await handler(event, data)
        if decision.notify:
            seconds = decision.wait_seconds
            text = ngettext(
                "Slow down a little: you can send the next request in {n} second.",
                "Slow down a little: you can send the next request in {n} seconds.",
                seconds,
            ).format(n=seconds)
            await notify(data["bot"], target, _("⏳ {text}").format(text=text))
        elif isinstance(target, CallbackQuery):
            await data["bot"].answer_callback_query(target.id)  # stop the button's spinner, say nothing
        return None
