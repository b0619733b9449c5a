"""Ticks cross processes through Redis Streams; each process still gets its own ticks at once."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from domain.market.models import Tick
from domain.market.redis_tickbus import RedisTickBus

pytestmark = pytest.mark.integration


async def _until(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_a_tick_published_in_one_process_reaches_another(redis_url: str) -> None:
    feed_redis, bot_redis = Redis.from_url(redis_url), Redis.from_url(redis_url)
    feed, bot = RedisTickBus(feed_redis, block_ms=100), RedisTickBus(bot_redis, block_ms=100)
    feed_seen: list[Tick] = []
    bot_seen: list[Tick] = []
    feed.add_listener(feed_seen.append)
    bot.add_listener(bot_seen.append)
    feed.start()
    bot.start()
    try:
        await asyncio.sleep(0.2)  # both readers are following the stream
        ticks = [Tick("EURUSD", 1_700_000_000_000 + i, 1.1 + i / 1e5, 1.1002 + i / 1e5, 1.0) for i in range(50)]
        feed.publish_many(ticks)
        assert feed_seen == ticks  # the feed's own listeners: synchronously, no round trip
        await _until(lambda: len(bot_seen) == 50)
        assert bot_seen == ticks  # the other process: every tick, in order, exactly
        await asyncio.sleep(0.3)
        assert feed_seen == ticks and feed.received == 0  # a process never re-reads its own ticks
        subscription = bot.subscribe(["GBPUSD"])
        feed.publish(Tick("GBPUSD", 1_700_000_001_000, 1.25, 1.2502))
        await _until(lambda: subscription.pending == 1)
        assert subscription.get_nowait() == Tick("GBPUSD", 1_700_000_001_000, 1.25, 1.2502)
    finally:
        await feed.aclose()
        await bot.aclose()
        await feed_redis.aclose()
        await bot_redis.aclose()


async def test_the_backlog_is_bounded_while_redis_is_unreachable(redis_url: str) -> None:
    from domain.market.redis_tickbus import MAX_BACKLOG

    redis = Redis.from_url(redis_url)
    bus = RedisTickBus(redis)  # never started: nothing drains the backlog
    seen: list[Tick] = []
    bus.add_listener(seen.append)
    try:
        bus.publish_many(Tick("EURUSD", i, 1.1, 1.1002) for i in range(MAX_BACKLOG + 1234))
        assert len(seen) == MAX_BACKLOG + 1234  # local listeners got every tick
        assert len(bus._outbox) == MAX_BACKLOG and bus._outbox[-1].time_msc == MAX_BACKLOG + 1233  # the newest kept
    finally:
        await redis.aclose()
