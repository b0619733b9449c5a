"""With Redis configured, the market feed's ticks reach the stream other processes follow."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.settings import Settings
from tests.fakes.telegram import FakeTelegram
from tests.harness import build_harness

pytestmark = pytest.mark.integration


async def test_feed_ticks_are_written_to_the_redis_stream(
    pg_url: str, redis_url: str, telegram: FakeTelegram, tmp_path: Path
) -> None:
    settings = Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path, secret_key="t")
    harness = await build_harness(settings, telegram)
    redis = Redis.from_url(redis_url)
    try:
        runtime = harness.app.market
        assert runtime.stream is not None  # Redis configured: the feed publishes to the stream
        runtime.hub.watch(["EURUSD"])
        assert await runtime.feed.poll_once() == 1
        await runtime.stream.flush()
        entries = await redis.xrange("ticks")
        assert [fields[b"s"] for _id, fields in entries] == [b"EURUSD"]
        tick = await runtime.hub.tick("EURUSD")
        assert float(entries[0][1][b"b"]) == tick.bid
    finally:
        await redis.aclose()
        await harness.close()
