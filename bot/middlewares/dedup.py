"""Skips an update another replica (or an earlier delivery) already handles or handled."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update
from aiogram_dialog.api.entities import DialogUpdate

from domain.dedup import UpdateLedger

log = logging.getLogger(__name__)


class DeduplicateMiddleware(BaseMiddleware):
    def __init__(self, ledger: UpdateLedger) -> None:
        self._ledger = ledger

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
        if not await self._ledger.claim(key):
            log.info("update %s already handled or in progress: skipped", event.update_id)
            return None
        try:
            result = await handler(event, data)
        except BaseException:
            await self._ledger.release(key)
            raise
        await self._ledger.done(key)
        return result
