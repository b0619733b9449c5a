"""The update claim on Redis: one script that claims, reads the FSM state and hits the rate-limit bucket."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from domain.dedup import MemoryUpdateLedger, RedisUpdateLedger
from domain.ratelimit import Bucket, RedisRateLimiter


async def test_memory_ledger_claims_once_until_released() -> None:
    ledger = MemoryUpdateLedger()
    assert await ledger.claim("1:10") and not await ledger.claim("1:10")
    await ledger.release("1:10")
    assert await ledger.claim("1:10")
    await ledger.done("1:10")
    assert not await ledger.claim("1:10")


@pytest.mark.integration
async def test_claim_reads_state_and_hits_the_bucket_only_when_it_claims(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        ledger, limiter = RedisUpdateLedger(redis), RedisRateLimiter(redis)
        await redis.set("fsm:state-key", "LinkForm:password")
        bucket = ("rl:u:7", Bucket("u:7", 30, 2))
        first = await ledger.claim_reading("1:100", "fsm:state-key", bucket)
        assert first.claimed and first.state == "LinkForm:password"
        assert first.decision is not None and first.decision.allowed
        duplicate = await ledger.claim_reading("1:100", "fsm:state-key", bucket)
        assert not duplicate.claimed and duplicate.state is None and duplicate.decision is None
        # The duplicate took no token: the bucket (burst 2) still lets one request through, then refuses once loudly.
        assert (await limiter.hit("u:7", 30, 2)).allowed
        refused = await ledger.claim_reading("1:101", "", bucket)
        assert refused.claimed and refused.state is None
        assert refused.decision is not None and not refused.decision.allowed and refused.decision.notify
        assert 1.5 < refused.decision.retry_after <= 2.0  # 30/min: one token every 2 s, as RedisRateLimiter
        plain = await ledger.claim_reading("1:102", None)
        assert plain.claimed and plain.decision is None
        await ledger.done("1:102")
        assert await redis.get("upd:1:102") == b"done"
        assert not await ledger.claim("1:102")
    finally:
        await redis.aclose()
