"""Leader election: exactly one process leads (e.g. runs the scheduler).

A lease in Redis (``SET key token NX PX ttl``) held by one process and renewed
well before it expires. Renewal and release check the token atomically (Lua),
so a process that lost its lease (paused too long) can never extend or delete
a successor's. When the leader dies its lease expires and another process
takes over within ``ttl``. Without Redis there is only one process: it leads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

log = logging.getLogger(__name__)

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    def __init__(self, redis: Redis | None, name: str, ttl: float = 15.0) -> None:
        self._redis = redis
        self._key = f"leader:{name}"
        self._ttl_ms = int(ttl * 1000)
        self.token = secrets.token_hex(8)
        if redis is not None:
            self._renew = redis.register_script(_RENEW)
            self._release = redis.register_script(_RELEASE)

    async def acquire(self) -> bool:
        if self._redis is None:
            return True
        return bool(await self._redis.set(self._key, self.token, nx=True, px=self._ttl_ms))

    async def renew(self) -> bool:
        if self._redis is None:
            return True
        return bool(await self._renew(keys=[self._key], args=[self.token, self._ttl_ms]))

    async def release(self) -> None:
        if self._redis is not None:
            await self._release(keys=[self._key], args=[self.token])

    @property
    def ttl(self) -> float:
        return self._ttl_ms / 1000


async def lead(lease: Lease, work: Callable[[], Awaitable[None]], *, poll: float | None = None) -> None:
    """Run ``work`` whenever this process holds the lease; stop it at once when the lease is lost.

    Runs until cancelled. ``work`` should run until cancelled too.
    """
    poll = poll if poll is not None else lease.ttl / 3
    while True:
        if not await lease.acquire():
            await asyncio.sleep(poll)
            continue
        log.info("became leader (%s)", lease.token)
        task = asyncio.create_task(work())
        try:
            while not task.done():
                await asyncio.sleep(poll)
                if not await lease.renew():
                    log.warning("lost the lease (%s): stopping", lease.token)
                    break
        finally:  # also on shutdown: hand over at once instead of after the lease expires
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await lease.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("leader work failed", exc_info=task.exception())
