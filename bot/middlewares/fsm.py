"""FSM state for each update (aiogram's FSM middleware), read in the de-duplication round trip when it can be.

With Redis for both the update ledger and the FSM storage, and no event isolation
lock on the FSM (the state is read after the lock otherwise, aiogram's rule), the
de-duplication middleware fetches the state key together with its claim
(:meth:`domain.dedup.RedisUpdateLedger.claim_reading`) and leaves it in the
update's data; this middleware then uses it instead of a second GET.
Everything else (``state``, ``raw_state``, ``fsm_storage``) is aiogram's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import Bot
from aiogram.fsm.middleware import FSMContextMiddleware
from aiogram.fsm.storage.base import BaseEventIsolation, BaseStorage
from aiogram.fsm.storage.memory import DisabledEventIsolation
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.fsm.strategy import FSMStrategy
from aiogram.types import TelegramObject

PREFETCHED_STATE = "_prefetched_state"  # data key: the state the de-duplication claim read


class StateMiddleware(FSMContextMiddleware):
    def __init__(
        self, storage: BaseStorage, events_isolation: BaseEventIsolation, strategy: FSMStrategy = FSMStrategy.USER_IN_CHAT
    ) -> None:
        super().__init__(storage=storage, events_isolation=events_isolation, strategy=strategy)
        self._prefetch = isinstance(storage, RedisStorage) and isinstance(events_isolation, DisabledEventIsolation)

    def state_key(self, data: dict[str, Any]) -> str | None:
        """The Redis key holding this update's state, when it may be read ahead (None: it may not)."""
        if not self._prefetch:
            return None
        context = self.resolve_event_context(data["bot"], data)
        if context is None:
            return None
        assert isinstance(self.storage, RedisStorage)
        return self.storage.key_builder.build(context.key, "state")

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if PREFETCHED_STATE not in data:
            return await super().__call__(handler, event, data)
        raw_state = data.pop(PREFETCHED_STATE)
        bot: Bot = data["bot"]
        context = self.resolve_event_context(bot, data)
        data["fsm_storage"] = self.storage
        if context is None:
            return await handler(event, data)
        async with self.events_isolation.lock(key=context.key):  # disabled isolation: a no-op
            data.update({"state": context, "raw_state": raw_state})
            return await handler(event, data)
