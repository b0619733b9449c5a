"""Per-tier token bucket per user. Over the limit: one 'wait N s' answer, then silence.

With Redis, when the user's profile is cached (their tier known before the database is asked), the
bucket is hit in the de-duplication claim's round trip (:meth:`RateLimitMiddleware.bucket`); this
middleware then takes that decision instead of asking again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, TelegramObject, Update
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.middlewares.common import interactive, notify
from domain.ratelimit import Bucket, Decision, RateLimiter, RedisRateLimiter
from domain.tiers import Tier
from domain.users import UserService

PREFETCHED_HIT = "_prefetched_hit"  # data key: (Bucket, Decision) from the de-duplication claim


class RateLimitMiddleware(BaseMiddleware):
    """``users``: given with a Redis limiter on the ledger's Redis, so the claim can hit the bucket early."""

    def __init__(self, limiter: RateLimiter, users: UserService | None = None) -> None:
        self._limiter = limiter
        self._users = users if isinstance(limiter, RedisRateLimiter) else None

    def bucket(self, event: Update, data: dict[str, Any]) -> tuple[str, Bucket] | None:
        """The limiter's key and the request this update will make, when it can be made now (None: later)."""
        tg_user = data.get("event_from_user")
        if self._users is None or tg_user is None or tg_user.is_bot or interactive(event) is None:
            return None
        user = self._users.cached(tg_user.id)
        if user is None:
            return None
        tier = self._users.tier_of(user)
        request = Bucket(f"u:{user.id}", tier.rate_per_minute, tier.burst)
        assert isinstance(self._limiter, RedisRateLimiter)
        return f"{self._limiter.prefix}:{request.key}", request

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
        request = Bucket(f"u:{data['user'].id}", tier.rate_per_minute, tier.burst)
        prefetched: tuple[Bucket, Decision] | None = data.pop(PREFETCHED_HIT, None)
        if prefetched is not None and prefetched[0] == request:
            decision = prefetched[1]
        else:  # not hit early, or the tier changed meanwhile
            decision = await self._limiter.hit(request.key, request.rate_per_minute, request.burst)
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
