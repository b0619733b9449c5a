import pytest
from redis.asyncio import Redis

from domain.ratelimit import MemoryRateLimiter, RedisRateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_bucket_burst_then_one_notice_then_refill() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock)
    decisions = [await limiter.hit("u:1", 60, 5) for _ in range(20)]
    assert [d.allowed for d in decisions] == [True] * 5 + [False] * 15
    assert [d.notify for d in decisions[5:]] == [True] + [False] * 14
    assert decisions[5].wait_seconds == 1  # 60/min refills one token per second
    clock.now += 1.0
    assert (await limiter.hit("u:1", 60, 5)).allowed  # a trickled-in token passes…
    refused = await limiter.hit("u:1", 60, 5)
    assert not refused.allowed and not refused.notify  # …but the flood is not announced twice
    clock.now += 5.0  # the bucket is full again: the user calmed down
    assert all([(await limiter.hit("u:1", 60, 5)).allowed for _ in range(5)])
    assert (await limiter.hit("u:1", 60, 5)).notify
    assert (await limiter.hit("u:2", 60, 5)).allowed  # buckets are per key


async def test_memory_limiter_is_bounded() -> None:
    limiter = MemoryRateLimiter(FakeClock(), max_keys=100)
    for i in range(1000):
        await limiter.hit(f"u:{i}", 60, 5)
    assert len(limiter._buckets) == 100


@pytest.mark.integration
async def test_redis_bucket_matches_memory_semantics(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        limiter = RedisRateLimiter(redis)
        decisions = [await limiter.hit("u:1", 30, 4) for _ in range(10)]
        assert [d.allowed for d in decisions] == [True] * 4 + [False] * 6
        assert [d.notify for d in decisions[4:]] == [True] + [False] * 5
        assert 1.5 < decisions[4].retry_after <= 2.0  # 30/min: one token every 2 s
        assert (await RedisRateLimiter(redis).hit("u:2", 30, 4)).allowed
        # A second replica sharing Redis sees the same empty bucket.
        assert not (await RedisRateLimiter(redis).hit("u:1", 30, 4)).allowed
    finally:
        await redis.aclose()
