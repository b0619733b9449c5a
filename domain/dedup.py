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
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from domain.ratelimit import Bucket, Decision, bucket_lua, decision

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


@dataclass(frozen=True, slots=True)
class Claim:
    """What :meth:`RedisUpdateLedger.claim_reading` found: the claim, the state, the bucket's decision."""

    claimed: bool
    state: str | None = None  # the FSM state (None: no state, or not asked)
    decision: Decision | None = None  # the rate limit's answer (None: not asked)


# KEYS[1] the claim, KEYS[2] an FSM state key ('' for none), KEYS[3] (optional) a rate-limit bucket;
# ARGV[1] the claim's ttl, ARGV[2..4] the bucket's (domain/ratelimit.py bucket_lua). A duplicate
# returns {0} and touches nothing else; otherwise {1, state, allowed, retry_ms, notify}.
_CLAIM_LUA = (
    """
if not redis.call('SET', KEYS[1], 'claimed', 'NX', 'EX', tonumber(ARGV[1])) then return {0} end
local fsm = false
if KEYS[2] ~= '' then fsm = redis.call('GET', KEYS[2]) end
if #KEYS < 3 then return {1, fsm} end
"""
    + bucket_lua("KEYS[3]", 2)
    + "return {1, fsm, allowed, retry, notify}\n"
)


class RedisUpdateLedger:
    """Shared by every replica: SET NX is the claim."""

    def __init__(self, redis: Redis, prefix: str = "upd") -> None:
        self._redis = redis
        self._prefix = prefix
        self._claim_script = redis.register_script(_CLAIM_LUA)

    @property
    def redis(self) -> Redis:
        return self._redis

    async def claim(self, key: str) -> bool:
        return bool(await self._redis.set(f"{self._prefix}:{key}", "claimed", nx=True, ex=CLAIM_SECONDS))

    async def claim_reading(self, key: str, state: str | None, bucket: tuple[str, Bucket] | None = None) -> Claim:
        """The claim, and only when it succeeds a GET of ``state`` (the update's FSM state key) and a hit on
        ``bucket`` (the limiter's full key and the request): one script, one round trip."""
        keys = [f"{self._prefix}:{key}", state or ""]
        args: list[float | int] = [CLAIM_SECONDS]
        if bucket is not None:
            keys.append(bucket[0])
            args += bucket[1].args()
        reply = await self._claim_script(keys=keys, args=args)
        if not reply or not reply[0]:
            return Claim(False)
        value = reply[1] if len(reply) > 1 else None
        text = value.decode("utf-8") if isinstance(value, bytes) else value
        return Claim(True, text, decision(*reply[2:5]) if len(reply) >= 5 else None)

    async def done(self, key: str) -> None:
        await self._redis.set(f"{self._prefix}:{key}", "done", ex=DONE_SECONDS)

    async def release(self, key: str) -> None:
        await self._redis.delete(f"{self._prefix}:{key}")
