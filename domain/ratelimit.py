"""Per-user token buckets, in memory or in Redis.

A bucket holds up to ``burst`` tokens and refills at ``rate_per_minute``. When
a request finds it empty the caller is told to wait. Only the first refusal
carries ``notify=True``: the bot answers once and stays silent through the
whole flood (requests that find a trickled-in token still pass) until the
bucket has refilled completely, i.e. the user has calmed down.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until one token is back
    notify: bool = False  # first refusal since the bucket was last full

    @property
    def wait_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after))


class RateLimiter(Protocol):
    async def hit(self, key: str, rate_per_minute: int, burst: int) -> Decision: ...


class MemoryRateLimiter:
    """Single-process limiter; bounded so a flood of distinct ids cannot grow it forever."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        # key -> [tokens, updated_at, notified]
        self._buckets: OrderedDict[str, list[float]] = OrderedDict()

    async def hit(self, key: str, rate_per_minute: int, burst: int) -> Decision:
        now = self._clock()
        rate = rate_per_minute / 60.0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = [float(burst), now, 0.0]
            if len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(float(burst), bucket[0] + (now - bucket[1]) * rate)
            bucket[1] = now
            if bucket[0] >= burst:
                bucket[2] = 0.0
        if bucket[0] >= 1.0:
            bucket[0] -= 1.0
            return Decision(True)
        notify = bucket[2] == 0.0
        bucket[2] = 1.0
        return Decision(False, (1.0 - bucket[0]) / rate, notify)


def bucket_lua(key: str, arg: int) -> str:
    """The token bucket in Lua, on the hash ``key`` with rate per second, burst and ttl (s) in ARGV[arg..arg+2].

    Leaves ``allowed``, ``retry`` (ms) and ``notify`` in Lua locals. The clock is Redis's own TIME,
    so replicas with skewed clocks agree. Shared by :class:`RedisRateLimiter` and the update claim
    (domain/dedup.py), which runs it in the claim's round trip.
    """
    return f"""
local rate = tonumber(ARGV[{arg}])
local burst = tonumber(ARGV[{arg + 1}])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', {key}, 't', 'ts', 'n')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
local notified = tonumber(state[3]) or 0
if tokens == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
  if tokens >= burst then notified = 0 end
end
local allowed, retry, notify = 0, 0, 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  retry = math.ceil((1 - tokens) / rate * 1000)
  if notified == 0 then notify = 1 end
  notified = 1
end
redis.call('HSET', {key}, 't', tostring(tokens), 'ts', tostring(now), 'n', notified)
redis.call('EXPIRE', {key}, tonumber(ARGV[{arg + 2}]))
"""


# KEYS[1] bucket hash; ARGV: rate per second, burst, ttl (s). Returns {allowed, retry_after_ms, notify}.
# Atomic: one script per request.
_LUA = bucket_lua("KEYS[1]", 1) + "return {allowed, retry, notify}\n"


@dataclass(frozen=True, slots=True)
class Bucket:
    """One request against a user's bucket, as the Redis script takes it."""

    key: str  # without the limiter's prefix
    rate_per_minute: int
    burst: int

    def args(self) -> list[float | int]:
        """ARGV of :func:`bucket_lua`: rate per second, burst, ttl."""
        rate = self.rate_per_minute / 60.0
        return [rate, self.burst, math.ceil(self.burst / rate) + 60]


def decision(allowed: object, retry_ms: object, notify: object) -> Decision:
    """A Decision from the script's three numbers."""
    return Decision(bool(allowed), int(retry_ms) / 1000.0, bool(notify))  # type: ignore[call-overload]


class RedisRateLimiter:
    """Shared by every replica: one atomic script call per request."""

    def __init__(self, redis: Redis, prefix: str = "rl") -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(_LUA)

    async def hit(self, key: str, rate_per_minute: int, burst: int) -> Decision:
        bucket = Bucket(key, rate_per_minute, burst)
        return decision(*await self._script(keys=[f"{self.prefix}:{key}"], args=bucket.args()))
