"""The tick bus across processes: Redis Streams behind the in-process bus's surface.

``publish`` fans a tick out locally at once (the feed's own bar aggregator and
alert index keep their fast path) and queues it for one writer task that
appends batches to the ``ticks`` stream (``XADD``, trimmed to ``maxlen``). A
reader task follows the stream (``XREAD BLOCK``) and republishes, locally, the
ticks other processes produced, so a bot replica or the web view sees the
feed running in a worker. Each process tags its entries with a producer id and
skips its own. Partitioning symbols among workers (consumer groups) builds on
this stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable, Iterable

from redis.asyncio import Redis

from domain.market.models import Tick
from domain.market.tickbus import InProcessTickBus, LatestTickSubscription, TickBatchListener, TickListener

log = logging.getLogger(__name__)

STREAM = "ticks"
MAXLEN = 100_000
BATCH = 500
MAX_BACKLOG = 20 * BATCH  # ticks are worth only while fresh: beyond this the oldest go


class RedisTickBus:
    def __init__(self, redis: Redis, *, stream: str = STREAM, maxlen: int = MAXLEN, block_ms: int = 1000) -> None:
        self._redis = redis
        self._stream = stream
        self._maxlen = maxlen
        self._block_ms = block_ms
        self.producer = secrets.token_hex(4)
        self.local = InProcessTickBus()
        self._outbox: list[Tick] = []
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.received = 0  # ticks from other processes
        self.written = 0

    # -- the TickBus surface --
    def add_listener(self, listener: TickListener, *, many: TickBatchListener | None = None) -> Callable[[], None]:
        return self.local.add_listener(listener, many=many)

    def subscribe(self, symbols: Iterable[str] | None = None) -> LatestTickSubscription:
        return self.local.subscribe(symbols)

    def publish(self, tick: Tick) -> None:
        self.local.publish(tick)
        self._outbox.append(tick)
        if len(self._outbox) > MAX_BACKLOG:
            del self._outbox[: len(self._outbox) - MAX_BACKLOG]
        self._wake.set()

    def publish_many(self, ticks: Iterable[Tick]) -> None:
        batch = ticks if isinstance(ticks, (list, tuple)) else list(ticks)
        self.local.publish_many(batch)
        self._outbox.extend(batch)
        if len(self._outbox) > MAX_BACKLOG:
            del self._outbox[: len(self._outbox) - MAX_BACKLOG]
        self._wake.set()

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [
                asyncio.create_task(self._write(), name="tickbus-writer"),
                asyncio.create_task(self._read(), name="tickbus-reader"),
            ]

    async def aclose(self) -> None:
        await self.flush()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.local.close()

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.local.close()

    # -- the Redis side --
    async def flush(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox[:BATCH], self._outbox[BATCH:]
            async with self._redis.pipeline(transaction=False) as pipe:
                for t in batch:
                    fields = {"s": t.symbol, "t": t.time_msc, "b": repr(t.bid), "a": repr(t.ask), "v": repr(t.volume),
                              "p": self.producer}  # fmt: skip
                    pipe.xadd(self._stream, fields, maxlen=self._maxlen, approximate=True)
                await pipe.execute()
            self.written += len(batch)

    async def _write(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # Redis down: keep the newest ticks, retry; the local fan-out never stopped
                log.warning("tick stream write failed; retrying", exc_info=True)
                self._outbox = self._outbox[-BATCH:]
                await asyncio.sleep(1.0)
                self._wake.set()

    async def _read(self) -> None:
        last = "$"
        while True:
            try:
                replies = await self._redis.xread({self._stream: last}, block=self._block_ms, count=BATCH)
            except Exception:
                log.warning("tick stream read failed; retrying", exc_info=True)
                await asyncio.sleep(1.0)
                continue
            for _stream, entries in replies or ():
                for entry_id, fields in entries:
                    last = entry_id
                    if fields.get(b"p", b"").decode() == self.producer:
                        continue
                    self.received += 1
                    self.local.publish(_decode(fields))


def _decode(fields: dict[bytes, bytes]) -> Tick:
    return Tick(
        symbol=fields[b"s"].decode(),
        time_msc=int(fields[b"t"]),
        bid=float(fields[b"b"]),
        ask=float(fields[b"a"]),
        volume=float(fields[b"v"]),
    )
