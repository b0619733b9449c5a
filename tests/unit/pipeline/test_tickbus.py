"""InProcessTickBus: listener fan-out, conflating subscriptions, back-pressure."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

from domain.market.models import Tick
from domain.market.tickbus import InProcessTickBus, TickBus, TickSource, TickSubscription


def _ticks(n: int, symbols: tuple[str, ...] = ("EURUSD", "GBPUSD", "USDJPY")) -> list[Tick]:
    return [Tick(symbols[i % len(symbols)], 1_000 + i, 1.0 + i / 1e6, 1.0001 + i / 1e6) for i in range(n)]


def test_bus_satisfies_the_protocols() -> None:
    bus = InProcessTickBus()
    assert isinstance(bus, TickBus) and isinstance(bus, TickSource)
    assert isinstance(bus.subscribe(), TickSubscription)


def test_listeners_get_every_tick_in_order_and_a_failing_one_is_isolated() -> None:
    bus = InProcessTickBus()
    got_a: list[Tick] = []
    got_b: list[Tick] = []

    def broken(_tick: Tick) -> None:
        raise RuntimeError("boom")

    bus.add_listener(got_a.append)
    remove_broken = bus.add_listener(broken)
    remove_b = bus.add_listener(got_b.append)
    ticks = _ticks(10)
    bus.publish(ticks[0])
    bus.publish_many(ticks[1:])
    assert got_a == ticks and got_b == ticks
    assert bus.listener_errors == 10 and bus.published == 10
    remove_broken()
    remove_b()
    bus.publish(ticks[0])
    assert len(got_a) == 11 and len(got_b) == 10 and bus.listener_errors == 10


def test_slow_subscriber_keeps_only_the_latest_tick_per_symbol_and_never_blocks_publish() -> None:
    bus = InProcessTickBus()
    fast: list[Tick] = []
    bus.add_listener(fast.append)
    slow = bus.subscribe()
    ticks = _ticks(30_000)
    bus.publish_many(ticks[:20_000])  # nobody reads the subscription meanwhile
    for tick in ticks[20_000:]:
        bus.publish(tick)
    assert len(fast) == 30_000  # the listener path saw everything
    assert slow.pending == 3  # bounded by the symbol count, not by the backlog
    latest = slow.drain()
    assert latest == ticks[-3:]  # the newest tick of each symbol
    assert slow.dropped == 30_000 - 3 and slow.delivered == 3
    assert slow.get_nowait() is None


async def test_async_subscription_delivers_latest_and_ends_on_close() -> None:
    bus = InProcessTickBus()
    sub = bus.subscribe(symbols=["EURUSD", "USDJPY"])
    received: list[Tick] = []

    async def consume() -> None:
        async for tick in sub:
            received.append(tick)
            await asyncio.sleep(0)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0)
    ticks = _ticks(9)
    bus.publish(ticks[0])  # EURUSD, picked up while the consumer waits
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    bus.publish_many(ticks[1:])  # a burst: the consumer is behind
    await asyncio.sleep(0.01)
    sub.close()
    await asyncio.wait_for(task, 1)
    # the latest of each symbol, the symbol pending longest first (USDJPY); GBPUSD filtered out
    assert received == [ticks[0], ticks[8], ticks[6]]
    assert sub.dropped == 3  # USDJPY 2 and 5, EURUSD 3: replaced before the consumer ran
    assert sub.closed and bus.subscribe().closed is False


async def test_bus_close_stops_subscribers() -> None:
    bus = InProcessTickBus()
    async with bus.subscribe() as sub:
        waiter = asyncio.create_task(sub.__anext__())
        await asyncio.sleep(0)
        bus.close()
        try:
            await asyncio.wait_for(waiter, 1)
        except StopAsyncIteration:
            pass
        else:
            raise AssertionError("the subscription should have ended")
    assert bus.subscribe().closed


def test_batch_listeners_take_the_whole_batch_in_order_and_resume_after_a_failing_tick() -> None:
    bus = InProcessTickBus()
    per_tick: list[Tick] = []
    batched: list[Tick] = []
    calls = [0]

    def take(ticks: Iterator[Tick]) -> None:
        calls[0] += 1
        for tick in ticks:
            if tick.time_msc in (1_003, 1_007):
                raise RuntimeError("boom")
            batched.append(tick)

    def never_starts(_ticks: Iterator[Tick]) -> None:
        raise RuntimeError("broken before the first tick")

    bus.add_listener(per_tick.append)
    bus.add_listener(lambda _t: None, many=take)
    bus.add_listener(lambda _t: None, many=never_starts)
    ticks = _ticks(10)
    bus.publish_many(iter(ticks))  # any iterable: a generator is read once
    assert per_tick == ticks
    assert batched == [t for t in ticks if t.time_msc not in (1_003, 1_007)]  # the failing ticks only are lost
    assert calls[0] == 3  # one call, and one more after each failure
    assert bus.listener_errors == 3 and bus.published == 10  # the listener that never starts fails once, not forever
    bus.publish(ticks[0])  # a single publish uses the per-tick form
    assert len(per_tick) == 11 and calls[0] == 3
