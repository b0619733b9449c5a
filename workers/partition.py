"""Scale-out on Redis: the watch set every process shares, and the agent jobs the workers split.

Both are used only with REDIS_URL; the embedded single process keeps its
in-memory watch set and runs the agent runner's passes itself.

``SharedWatch``: the symbols users asked about (/price, /chart, alerts, the
web view) on any bot replica reach the market feed of the worker process. A
sorted set ``market:watched`` maps symbol → when it was last asked (epoch
seconds), trimmed to ``WATCH_TTL``. ``note`` is synchronous and never waits for
Redis: a symbol is written at most once per ``WRITE_EVERY`` per process, by a
background task. The feed reads the set at most once per ``READ_EVERY``.

``FeedShare``: which watched symbols this worker's market feed polls. Each
feeding process beats into the sorted set ``market:feeders`` (member → last
beat) every ``BEAT_EVERY``; members silent for ``FEEDER_TTL`` are dropped, so a
dead worker's symbols move to the survivors within that time. Each symbol
belongs to the live member with the highest hash of (member, symbol)
(rendezvous hashing: a member joining or leaving moves only its own share).
Without Redis a process polls everything: a tick twice is harmless (alert
firings are claimed in the database), a tick missing is not.

``AgentJobs``: the agent runner's work as a Redis Stream (``agents:jobs``,
trimmed to ``JOBS_MAXLEN``) read by one consumer group. On each pass one
process (the first to take the pass key, which expires after the interval)
enqueues one job per (symbol, timeframe) and sends the daily digests; every
worker reads jobs with XREADGROUP, one at a time, processes them with the
runner's per-bar logic and acknowledges them. A job delivered to a worker that
died stays pending; after ``CLAIM_IDLE`` another worker takes it over
(XAUTOCLAIM). A job handled twice is harmless: the runner claims each
(symbol, timeframe, bar) in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from domain.market.models import Timeframe
from workers.market_feed import WATCH_TTL

log = logging.getLogger(__name__)

WATCH_KEY = "market:watched"
WRITE_EVERY = 60.0  # a process writes the same symbol at most this often
READ_EVERY = 1.0  # the feed reads the shared set at most this often

FEEDERS_KEY = "market:feeders"
BEAT_EVERY = 5.0
FEEDER_TTL = 15.0

JOBS_STREAM = "agents:jobs"
JOBS_GROUP = "agent-runners"
JOBS_MAXLEN = 10_000
PASS_KEY = "agents:jobs:pass"
CLAIM_IDLE = 60.0  # seconds a delivered job may stay unacknowledged before another worker takes it over
STALE_CONSUMER = 3600.0  # a consumer with nothing pending, silent this long, is removed from the group
BLOCK = 1.0  # seconds a worker waits for a job per read
MAX_BACKOFF = 30.0

Clock = Callable[[], float]


class SharedWatch:
    """The deployment-wide watch set (a Redis sorted set symbol → last asked, epoch seconds)."""

    def __init__(
        self,
        redis: Redis,
        *,
        key: str = WATCH_KEY,
        ttl: float = WATCH_TTL,
        write_every: float = WRITE_EVERY,
        read_every: float = READ_EVERY,
        clock: Clock = time.time,
    ) -> None:
        self._redis = redis
        self._key = key
        self.ttl = ttl
        self._write_every = write_every
        self._read_every = read_every
        self._clock = clock
        self._written: dict[str, float] = {}  # symbol -> when this process last queued it for Redis
        self._pending: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._cache: set[str] = set()
        self._read_at: float | None = None
        self.writes = 0  # round trips that wrote symbols
        self.reads = 0  # round trips that read the set

    def note(self, symbols: Iterable[str]) -> None:
        """Record that users asked for ``symbols``; written to Redis in the background, debounced."""
        now = self._clock()
        for symbol in symbols:
            last = self._written.get(symbol)
            if last is None or now - last >= self._write_every:
                self._written[symbol] = now
                self._pending[symbol] = now
        if not self._pending or (self._task is not None and not self._task.done()):
            return  # nothing new, or the running write picks it up
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): the next note or flush writes it
            return
        self._task = loop.create_task(self._write(), name="shared-watch")

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.zadd(self._key, batch, gt=True)  # never moves a symbol back in time
                    pipe.zremrangebyscore(self._key, "-inf", f"({self._clock() - self.ttl}")
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                for symbol in batch:  # not shared yet: the next ask retries
                    self._written.pop(symbol, None)
                log.warning("shared watch set: write failed (%s)", type(exc).__name__)
                return
            self.writes += 1

    async def flush(self) -> None:
        """Write what is pending now (shutdown, tests)."""
        if self._task is not None and not self._task.done():
            await self._task
        if self._pending:
            await self._write()

    async def symbols(self) -> set[str]:
        """Every symbol asked for within ``ttl`` on any process; the last known set while Redis is down."""
        now = self._clock()
        if self._read_at is not None and 0 <= now - self._read_at < self._read_every:
            return self._cache
        try:
            names = await self._redis.zrangebyscore(self._key, now - self.ttl, "+inf")
        except (RedisError, OSError) as exc:
            log.warning("shared watch set: read failed (%s); using the last known set", type(exc).__name__)
            return self._cache
        self.reads += 1
        self._read_at = now
        self._cache = {n.decode() if isinstance(n, bytes) else str(n) for n in names}
        return self._cache

    async def aclose(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.flush()


class FeedShare:
    """This process's share of the market feed's symbols, among the live feeding processes."""

    def __init__(
        self,
        redis: Redis,
        *,
        member: str | None = None,
        key: str = FEEDERS_KEY,
        beat_every: float = BEAT_EVERY,
        ttl: float = FEEDER_TTL,
        clock: Clock = time.time,
    ) -> None:
        self._redis = redis
        self.member = member or consumer_name()
        self._key = key
        self._beat_every, self._ttl, self._clock = beat_every, ttl, clock
        self._beat_at: float | None = None
        self.members: list[str] = []  # the live members as last read; empty: poll everything

    async def beat(self) -> None:
        """Say this process is alive and read who else is (at most once per ``beat_every``)."""
        now = self._clock()
        if self._beat_at is not None and 0 <= now - self._beat_at < self._beat_every:
            return
        self._beat_at = now
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.zadd(self._key, {self.member: now})
                pipe.zremrangebyscore(self._key, "-inf", f"({now - self._ttl}")
                pipe.zrange(self._key, 0, -1)
                *_, names = await pipe.execute()
        except (RedisError, OSError) as exc:
            if self.members:
                log.warning("feed share: Redis unreachable (%s); polling every symbol", type(exc).__name__)
            self.members = []
            return
        members = sorted(n.decode() if isinstance(n, bytes) else str(n) for n in names)
        if members != self.members:
            log.info("feed share: %d feeding process(es)", len(members))
        self.members = members

    def owns(self, symbol: str) -> bool:
        if not self.members:
            return True
        return max(self.members, key=lambda m: _weight(m, symbol)) == self.member

    async def leave(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._redis.zrem(self._key, self.member)


def _weight(member: str, symbol: str) -> bytes:
    """The same in every process (unlike ``hash``, which is salted per process)."""
    return hashlib.blake2b(f"{member}\x00{symbol}".encode(), digest_size=8).digest()


class Runner(Protocol):
    """What AgentJobs needs of workers/agent_runner.py AgentRunner."""

    interval: float

    async def pairs(self) -> list[tuple[str, Timeframe]]: ...

    async def process(self, symbol: str, tf: Timeframe) -> int: ...

    async def send_digests(self) -> int: ...


def consumer_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class AgentJobs:
    """The agent runner's (symbol, timeframe) jobs, split among worker processes by a consumer group."""

    def __init__(
        self,
        redis: Redis,
        *,
        stream: str = JOBS_STREAM,
        group: str = JOBS_GROUP,
        consumer: str | None = None,
        maxlen: int = JOBS_MAXLEN,
        claim_idle: float = CLAIM_IDLE,
        block: float = BLOCK,
    ) -> None:
        self._redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer or consumer_name()
        self.maxlen = maxlen
        self.claim_idle = claim_idle
        self.block = block
        self._pass_key = f"{PASS_KEY}:{stream}"
        self._cursor = "0-0"  # where the next XAUTOCLAIM scan starts
        self._ready = False
        self.handled = 0  # jobs acknowledged by this process
        self.claimed = 0  # jobs taken over from other consumers

    async def ensure_group(self) -> None:
        if self._ready:
            return
        try:
            await self._redis.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._ready = True

    # ---- producing ----
    async def enqueue(self, jobs: Iterable[tuple[str, Timeframe]]) -> int:
        await self.ensure_group()
        n = 0
        async with self._redis.pipeline(transaction=False) as pipe:
            for symbol, tf in jobs:
                pipe.xadd(self.stream, {"symbol": symbol, "tf": tf.value}, maxlen=self.maxlen, approximate=True)
                n += 1
            if n:
                await pipe.execute()
        return n

    async def offer(self, runner: Runner, every: float) -> int | None:
        """Start a pass unless another process started one within ``every`` seconds: enqueue one job per
        (symbol, timeframe), or none while the last pass's jobs still wait to be read (they do the same
        work: a job processes every bar closed since the last one). None when the pass was not ours."""
        ms = max(1, int(every * 1000))
        if not await self._redis.set(self._pass_key, self.consumer, nx=True, px=ms):
            return None
        await self.ensure_group()
        if await self.lag() > 0:
            return 0
        await self._prune()
        return await self.enqueue(await runner.pairs())

    async def lag(self) -> int:
        """Jobs not yet delivered to any worker."""
        for group in await self._redis.xinfo_groups(self.stream):
            name = group.get("name")
            if (name.decode() if isinstance(name, bytes) else name) == self.group:
                lag = group.get("lag")
                if lag is None:  # the stream was trimmed past undelivered entries: unknown, count as busy
                    return 1
                return int(lag)
        return 0

    async def _prune(self) -> None:
        """Forget consumers (dead processes) with nothing pending that have been silent for a long time."""
        for info in await self._redis.xinfo_consumers(self.stream, self.group):
            if int(info.get("pending", 0)) == 0 and int(info.get("idle", 0)) > STALE_CONSUMER * 1000:
                await self._redis.xgroup_delconsumer(self.stream, self.group, info["name"])

    # ---- consuming ----
    async def take(self, count: int = 1, *, block: float | None = None) -> list[tuple[str, str, Timeframe | None]]:
        """Jobs for this consumer: first those another consumer left unacknowledged for ``claim_idle``,
        else new ones (waiting up to ``block`` seconds). Each is (entry id, symbol, timeframe)."""
        await self.ensure_group()
        try:
            entries = await self._claim(count)
            if entries:
                self.claimed += len(entries)
            else:
                wait = self.block if block is None else block
                reply = await self._redis.xreadgroup(
                    self.group, self.consumer, {self.stream: ">"}, count=count, block=max(1, int(wait * 1000))
                )
                entries = [e for _, batch in reply or [] for e in batch]
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._ready = False  # Redis lost the group (restarted without persistence): recreate it
            log.warning("agent jobs: the consumer group was gone; recreating it")
            return []
        return [self._parse(entry_id, fields) for entry_id, fields in entries]

    async def _claim(self, count: int) -> list[tuple[Any, Any]]:
        reply = await self._redis.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_time=int(self.claim_idle * 1000),
            start_id=self._cursor, count=count,
        )  # fmt: skip
        cursor, entries = reply[0], reply[1]
        self._cursor = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
        return [(entry_id, fields) for entry_id, fields in entries]

    @staticmethod
    def _parse(entry_id: Any, fields: Any) -> tuple[str, str, Timeframe | None]:
        eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        data = {
            (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in (fields or {}).items()
        }
        symbol, tf = str(data.get("symbol", "")), str(data.get("tf", ""))
        try:
            return eid, symbol, (Timeframe(tf) if symbol else None)
        except ValueError:
            return eid, symbol, None

    async def ack(self, entry_id: str) -> None:
        await self._redis.xack(self.stream, self.group, entry_id)
        self.handled += 1

    async def work_once(self, runner: Runner, *, block: float | None = None) -> int:
        """Take one job, process it, acknowledge it; returns how many bars it processed."""
        done = 0
        for entry_id, symbol, tf in await self.take(1, block=block):
            if tf is not None:  # a malformed entry is acknowledged and dropped
                done += await runner.process(symbol, tf)
            await self.ack(entry_id)
        return done

    async def run(self, runner: Runner) -> None:
        """The worker loop: a pass every ``runner.interval`` (when no other process took it), jobs between."""
        next_pass = 0.0
        delay = 1.0
        while True:
            try:
                if time.monotonic() >= next_pass:
                    next_pass = time.monotonic() + runner.interval
                    if await self.offer(runner, runner.interval) is not None:
                        try:
                            await runner.send_digests()
                        except Exception:
                            log.exception("agent runner: digests failed")
                await self.work_once(runner)
                delay = 1.0
            except (RedisError, OSError) as exc:
                log.warning("agent jobs: Redis unavailable (%s); retrying in %.0fs", type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    async def pending(self) -> int:
        """Jobs delivered and not yet acknowledged, across the group (tests, /metrics)."""
        info = await self._redis.xpending(self.stream, self.group)
        return int(info.get("pending", 0) if isinstance(info, dict) else info[0])
