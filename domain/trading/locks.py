"""One lock per trading account, held from the risk check to the broker's answer.

The /risk limits (max positions, daily loss, risk per trade) are checked on
fresh account data and the order is sent right after; without a lock two
confirmations (two taps, two replicas, an auto-trade beside a chat order)
both pass the check and both send. :meth:`AccountLocks.hold` makes the
claim of the order, the check and the send one critical section per account
(kind, login), across every process of the deployment:

- PostgreSQL: a transaction-level advisory lock (``pg_advisory_xact_lock``)
  on a connection of its own, released by the transaction's end, and by the
  server if the process dies;
- SQLite with Redis (processes that share no PostgreSQL): a Redis lock
  (``SET NX PX`` with a token, released by compare-and-delete; it expires
  after ``REDIS_TTL`` if its holder dies);
- SQLite alone (one process): an asyncio lock.

Within a process, waiters first queue on an asyncio lock per account, so one
process holds at most one database connection per account for its locking.
Waiting is bounded (``WAIT``): past it :class:`AccountBusy` is raised and
nothing was claimed or sent. The reconciler (domain/trading/reconcile.py)
takes the same lock, so it never looks at an order while its sender is
between the claim and the broker's answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.trading.models import AccountBusy

WAIT = 60.0  # seconds a confirmation waits for the account (another send is bounded by the gateway timeout)
REDIS_TTL_MS = 180_000  # longer than any send (the bridge gateway's budget is under a minute)
REDIS_POLL = 0.02
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class AccountLocks(Protocol):
    def hold(self, kind: str, login: int, *, wait: float = WAIT) -> AbstractAsyncContextManager[None]: ...


def lock_key(kind: str, login: int) -> int:
    """A stable signed 64-bit key for ``pg_advisory_xact_lock`` (the same in every process)."""
    digest = hashlib.blake2b(f"hybrid:account:{kind}:{login}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class LocalLocks:
    """asyncio locks per account: one process (and the first stage of the shared locks below)."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[tuple[str, int], asyncio.Lock] = weakref.WeakValueDictionary()

    @asynccontextmanager
    async def hold(self, kind: str, login: int, *, wait: float = WAIT) -> AsyncIterator[None]:
        lock = self._locks.get((kind, login))
        if lock is None:
            lock = self._locks[(kind, login)] = asyncio.Lock()
        try:
            await asyncio.wait_for(lock.acquire(), wait)
        except TimeoutError:
            raise AccountBusy("account lock wait timed out") from None
        try:
            yield
        finally:
            lock.release()


class PgAdvisoryLocks:
    """``pg_advisory_xact_lock`` in a transaction of its own, behind a per-process asyncio lock."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._local = LocalLocks()

    @asynccontextmanager
    async def hold(self, kind: str, login: int, *, wait: float = WAIT) -> AsyncIterator[None]:
        started = time.monotonic()
        async with self._local.hold(kind, login, wait=wait):
            left = max(0.05, wait - (time.monotonic() - started))
            async with self._engine.connect() as conn:
                # lock_timeout bounds the wait for the advisory lock too (local: this transaction only); one
                # statement, one round trip
                lock = text("SELECT set_config('lock_timeout', :t, true), pg_advisory_xact_lock(:k)")
                try:
                    await conn.execute(lock, {"t": f"{int(left * 1000)}ms", "k": lock_key(kind, login)})
                except DBAPIError as exc:
                    if "lock timeout" in str(exc.orig).lower() or "55P03" in str(getattr(exc.orig, "sqlstate", "")):
                        raise AccountBusy("account lock wait timed out") from None
                    raise
                try:
                    yield
                finally:
                    await conn.rollback()  # ends the transaction: the lock is released


class RedisLocks:
    """A Redis lock per account (SQLite deployments whose processes share Redis), behind an asyncio lock."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._local = LocalLocks()

    @asynccontextmanager
    async def hold(self, kind: str, login: int, *, wait: float = WAIT) -> AsyncIterator[None]:
        started = time.monotonic()
        async with self._local.hold(kind, login, wait=wait):
            key, token = f"lock:account:{kind}:{login}", secrets.token_hex(8)
            while not await self._redis.set(key, token, nx=True, px=REDIS_TTL_MS):
                if time.monotonic() - started > wait:
                    raise AccountBusy("account lock wait timed out")
                await asyncio.sleep(REDIS_POLL)
            try:
                yield
            finally:
                await self._redis.eval(_RELEASE, 1, key, token)  # type: ignore[misc]


def account_locks(engine: AsyncEngine, redis: Redis | None) -> AccountLocks:
    """The strongest lock the deployment offers: PostgreSQL, else Redis, else this process."""
    if engine.dialect.name == "postgresql":
        return PgAdvisoryLocks(engine)
    if redis is not None:
        return RedisLocks(redis)
    return LocalLocks()

