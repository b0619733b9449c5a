"""Update de-duplication: the same Telegram update is handled once.

Behind a load balancer two replicas may receive the same ``update_id`` (a
webhook retried after a slow answer). An update is *claimed* for a short
time while it is handled, then marked *done* for a day. If handling fails or
the process dies, the claim expires and Telegram's redelivery is handled.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from redis.asyncio import Redis

CLAIM_SECONDS = 60
DONE_SECONDS = 86_400


class UpdateLedger(Protocol):
    async def claim(self, key: str) -> bool: ...
    async def done(self, key: str) -> None: ...
    async def release(self, key: str) -> None: ...


class MemoryUpdateLedger:
    """One process's view; bounded."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 200_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._until: OrderedDict[str, float] = OrderedDict()

    async def claim(self, key: str) -> bool:
        now = self._clock()
        until = self._until.get(key)
        if until is not None and until > now:
            return False
        self._until[key] = now + CLAIM_SECONDS
        self._until.move_to_end(key)
        if len(self._until) > self._max_keys:
            self._until.popitem(last=False)
        return True

    async def done(self, key: str) -> None:
        self._until[key] = self._clock() + DONE_SECONDS

    async def release(self, key: str) -> None:
        self._until.pop(key, None)


class RedisUpdateLedger:
    """Shared by every replica: SET NX is the claim."""

    def __init__(self, redis: Redis, prefix: str = "upd") -> None:
        self._redis = redis
        self._prefix = prefix

    async def claim(self, key: str) -> bool:
        return bool(await self._redis.set(f"{self._prefix}:{key}", "claimed", nx=True, ex=CLAIM_SECONDS))

    async def claim_reading(self, key: str, other: str) -> tuple[bool, str | None]:
        """The claim and a GET of ``other`` (the update's FSM state) in one round trip.

        The value is only meaningful when the claim succeeded; a duplicate does nothing with it.
        """
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.set(f"{self._prefix}:{key}", "claimed", nx=True, ex=CLAIM_SECONDS)
            pipe.get(other)
            claimed, value = await pipe.execute()
        return bool(claimed), value.decode("utf-8") if isinstance(value, bytes) else value

    async def done(self, key: str) -> None:
        await self._redis.set(f"{self._prefix}:{key}", "done", ex=DONE_SECONDS)

    async def release(self, key: str) -> None:
        await self._redis.delete(f"{self._prefix}:{key}")
