"""In-process tick fan-out: one publisher, synchronous listeners, async subscribers.

Two ways to consume ticks:

* listeners (``add_listener``): plain callables run inside ``publish``, in
  registration order. This is the fast path for in-process consumers such as
  the bar aggregator and the alert index; they must be quick and must not
  block. A listener that raises is logged and counted; the others still run.
  A listener may come with a batch form (``many``): ``publish_many`` then
  hands it the whole batch as one iterator instead of calling it per tick,
  which saves a Python call per tick and listener. Each listener still sees
  every tick in order, but listener after listener (the second may not have
  seen tick 1 while the first handles tick 2), so listeners must not depend
  on each other's progress. The batch form takes ticks from the iterator one
  by one with a plain ``for``; when it raises, the bus logs it and calls it
  again with the same iterator, so it resumes after the failing tick like the
  per-tick form would.
* subscriptions (``subscribe``): async iterators for consumers that may be
  slow (live quote views, stream writers). Each holds at most one pending tick
  per symbol: when the consumer falls behind, a newer tick of a symbol
  replaces the pending one (counted in ``dropped``). ``publish`` never waits
  on a subscriber and a subscriber's memory is bounded by its symbol count.

``publish`` must run on the event loop's thread when there are async
subscribers (it wakes them with ``Future.set_result``).

``TickSource`` and ``TickBus`` are the Protocols the rest of the code depends
on, so a Redis Streams bus can replace ``InProcessTickBus`` with the same
surface: its ``publish`` appends to a stream, and a reader task calls the
local listeners and subscriptions.
"""

from __future__ import annotations

import asyncio
import logging
import operator
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Protocol, runtime_checkable

from domain.market.models import Tick

__all__ = [
    "InProcessTickBus", "LatestTickSubscription", "TickBatchListener", "TickBus", "TickListener", "TickSource",
    "TickSubscription",
]

log = logging.getLogger(__name__)

TickListener = Callable[[Tick], object]
TickBatchListener = Callable[[Iterator[Tick]], object]


@runtime_checkable
class TickSubscription(Protocol):
    """An async stream of ticks that keeps only the latest pending tick per symbol."""

    def __aiter__(self) -> AsyncIterator[Tick]: ...

    async def __anext__(self) -> Tick: ...

    def get_nowait(self) -> Tick | None: ...

    def drain(self) -> list[Tick]: ...

    def close(self) -> None: ...


@runtime_checkable
class TickSource(Protocol):
    """Where consumers get ticks from."""

    def add_listener(self, listener: TickListener, *, many: TickBatchListener | None = None) -> Callable[[], None]: ...

    def subscribe(self, symbols: Iterable[str] | None = None) -> TickSubscription: ...


@runtime_checkable
class TickBus(TickSource, Protocol):
    """A tick source that the market feed publishes into."""

    def publish(self, tick: Tick) -> None: ...

    def publish_many(self, ticks: Iterable[Tick]) -> None: ...

    def close(self) -> None: ...


class LatestTickSubscription:
    """A bounded, conflating subscription: one pending tick per symbol, oldest symbol first."""

    __slots__ = ("_bus", "_symbols", "_pending", "_waiter", "_closed", "dropped", "delivered")

    def __init__(self, bus: InProcessTickBus | None, symbols: Iterable[str] | None) -> None:
        self._bus = bus
        self._symbols = frozenset(symbols) if symbols is not None else None
        self._pending: dict[str, Tick] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.dropped = 0  # pending ticks replaced by a newer one before delivery
        self.delivered = 0

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def pending(self) -> int:
        return len(self._pending)

    def offer(self, tick: Tick) -> None:
        """Called by the bus; never blocks."""
        if self._closed or (self._symbols is not None and tick.symbol not in self._symbols):
            return
        pending = self._pending
        if tick.symbol in pending:
            self.dropped += 1
        pending[tick.symbol] = tick
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def get_nowait(self) -> Tick | None:
        pending = self._pending
        if not pending:
            return None
        tick = pending.pop(next(iter(pending)))
        self.delivered += 1
        return tick

    def drain(self) -> list[Tick]:
        """All pending ticks (one per symbol) at once."""
        ticks = list(self._pending.values())
        self._pending.clear()
        self.delivered += len(ticks)
        return ticks

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        if self._bus is not None:
            self._bus._unsubscribe(self)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[Tick]:
        return self

    async def __anext__(self) -> Tick:
        while True:
            tick = self.get_nowait()
            if tick is not None:
                return tick
            if self._closed:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def __aenter__(self) -> LatestTickSubscription:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.close()


class InProcessTickBus:
    """The single-process ``TickBus``."""

    def __init__(self) -> None:
        self._listeners: tuple[TickListener, ...] = ()
        self._entries: tuple[tuple[TickListener, TickBatchListener | None], ...] = ()
        self._subs: tuple[LatestTickSubscription, ...] = ()
        self._closed = False
        self.published = 0
        self.listener_errors = 0

    def add_listener(self, listener: TickListener, *, many: TickBatchListener | None = None) -> Callable[[], None]:
        """Run ``listener(tick)`` inside every publish (``many(iterator)`` once per ``publish_many``, when given);
        returns a function that removes it."""
        entry = (listener, many)
        self._entries = (*self._entries, entry)
        self._listeners = (*self._listeners, listener)

        def remove() -> None:
            self._entries = tuple(x for x in self._entries if x is not entry)
            self._listeners = tuple(x for x, _ in self._entries)

        return remove

    def subscribe(self, symbols: Iterable[str] | None = None) -> LatestTickSubscription:
        """A new async subscription, to every symbol or to ``symbols`` only."""
        sub = LatestTickSubscription(self, symbols)
        if self._closed:
            sub.close()
        else:
            self._subs = (*self._subs, sub)
        return sub

    def _unsubscribe(self, sub: LatestTickSubscription) -> None:
        self._subs = tuple(x for x in self._subs if x is not sub)

    def publish(self, tick: Tick) -> None:
        self.published += 1
        for listener in self._listeners:
            try:
                listener(tick)
            except Exception:
                self._listener_failed(listener)
        for sub in self._subs:
            sub.offer(tick)

    def publish_many(self, ticks: Iterable[Tick]) -> None:
        """Publish in order: each batch listener takes the whole batch at once, the others get it tick by tick."""
        batch: Sequence[Tick] = ticks if isinstance(ticks, (list, tuple)) else list(ticks)
        for listener, many in self._entries:
            if many is not None:
                self._run_batch(listener, many, batch)
                continue
            for tick in batch:
                try:
                    listener(tick)
                except Exception:
                    self._listener_failed(listener)
        for sub in self._subs:
            offer = sub.offer
            for tick in batch:
                offer(tick)
        self.published += len(batch)

    def _run_batch(self, listener: TickListener, many: TickBatchListener, batch: Sequence[Tick]) -> None:
        it = iter(batch)
        left = len(batch)
        while left:
            try:
                many(it)
                return
            except Exception:
                self._listener_failed(listener)
            now = operator.length_hint(it)
            if now >= left:  # it failed before taking a tick: calling again would fail the same way
                return
            left = now

    def close(self) -> None:
        """Stop every subscription; listeners are dropped."""
        self._closed = True
        self._listeners = ()
        self._entries = ()
        for sub in self._subs:
            sub.close()
        self._subs = ()

    def _listener_failed(self, listener: TickListener) -> None:
        self.listener_errors += 1
        log.exception("tick listener %r failed", listener)
