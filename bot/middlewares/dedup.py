"""Skips an update another replica (or an earlier delivery) already handles or handled."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from aiogram_dialog.api.entities import DialogUpdate

from bot.middlewares.fsm import PREFETCHED_STATE
from domain.dedup import RedisUpdateLedger, UpdateLedger

log = logging.getLogger(__name__)


class DeduplicateMiddleware(BaseMiddleware):
    """``state_key`` (bot/middlewares/fsm.py StateMiddleware.state_key): the FSM state key to read in the
    claim's round trip on Redis, left in the data for the FSM middleware inside."""

    def __init__(self, ledger: UpdateLedger, state_key: Callable[[dict[str, Any]], str | None] | None = None) -> None:
        self._ledger = ledger
        self._state_key = state_key if isinstance(ledger, RedisUpdateLedger) else None

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
        state_key = self._state_key(data) if self._state_key is not None else None
        if state_key is not None:
            assert isinstance(self._ledger, RedisUpdateLedger)
            claimed, data[PREFETCHED_STATE] = await self._ledger.claim_reading(key, state_key)
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
