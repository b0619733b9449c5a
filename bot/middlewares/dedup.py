"""Skips an update another replica (or an earlier delivery) already handles or handled."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from aiogram_dialog.api.entities import DialogUpdate

from bot.middlewares.fsm import PREFETCHED_STATE
from bot.middlewares.ratelimit import PREFETCHED_HIT
from domain.dedup import RedisUpdateLedger, UpdateLedger
from domain.ratelimit import Bucket

log = logging.getLogger(__name__)


class DeduplicateMiddleware(BaseMiddleware):
    """On Redis the claim also does, in the same script and only when it succeeds, the reads of the
    middlewares inside: ``state_key`` (bot/middlewares/fsm.py StateMiddleware.state_key) the FSM state,
    ``bucket`` (bot/middlewares/ratelimit.py RateLimitMiddleware.bucket) the rate-limit hit. Their
    answers are left in the data for those middlewares."""

    def __init__(
        self,
        ledger: UpdateLedger,
        state_key: Callable[[dict[str, Any]], str | None] | None = None,
        bucket: Callable[[Update, dict[str, Any]], tuple[str, Bucket] | None] | None = None,
    ) -> None:
        self._ledger = ledger
        self._redis = ledger if isinstance(ledger, RedisUpdateLedger) else None
        self._state_key = state_key
        self._bucket = bucket

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        if isinstance(event, DialogUpdate):  # aiogram-dialog's internal refreshes: update_id 0, never redelivered
            return await handler(event, data)
        key = f"{data['bot'].id}:{event.update_id}"
        if self._redis is not None:
            state_key = self._state_key(data) if self._state_key is not None else None
            bucket = self._bucket(event, data) if self._bucket is not None else None
            claim = await self._redis.claim_reading(key, state_key, bucket)
            claimed = claim.claimed
            if claimed and state_key is not None:
                data[PREFETCHED_STATE] = claim.state
            if claimed and bucket is not None and claim.decision is not None:
                data[PREFETCHED_HIT] = (bucket[1], claim.decision)
        else:
            claimed = await self._ledger.claim(key)
        if not claimed:
            log.info("update %s already handled or in progress: skipped", event.update_id)
            return None
        try:
            result = await handler(event, data)
        except BaseException:
            await self._ledger.release(key)
            raise
        await self._ledger.done(key)
        return result
