"""One leader among several processes, hand-over when it dies, never two at once."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from domain.leader import Lease, lead


async def test_without_redis_the_only_process_leads() -> None:
    ran = asyncio.Event()

    async def work() -> None:
        ran.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(lead(Lease(None, "jobs"), work, poll=0.01))
    await asyncio.wait_for(ran.wait(), 5)
    task.cancel()


@pytest.mark.integration
async def test_one_leader_then_hand_over(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    leading: list[str] = []
    overlaps: list[list[str]] = []

    def worker(name: str):  # type: ignore[no-untyped-def]
        async def work() -> None:
            leading.append(name)
            if len(leading) > 1:
                overlaps.append(list(leading))
            try:
                await asyncio.Event().wait()
            finally:
                leading.remove(name)

        return work

    try:
        a = asyncio.create_task(lead(Lease(redis, "jobs", ttl=0.6), worker("a"), poll=0.1))
        await asyncio.sleep(0.3)
        b = asyncio.create_task(lead(Lease(redis, "jobs", ttl=0.6), worker("b"), poll=0.1))
        await asyncio.sleep(1.0)
        assert leading == ["a"]  # b waits while a renews
        a.cancel()  # the leader shuts down: it releases its lease
        with pytest.raises(asyncio.CancelledError):
            await a
        assert await redis.get("leader:jobs") is None or leading == ["b"]
        for _ in range(40):
            if leading == ["b"]:
                break
            await asyncio.sleep(0.05)
        assert leading == ["b"]
        assert overlaps == []
        b.cancel()
    finally:
        await redis.aclose()


@pytest.mark.integration
async def test_a_stale_leader_cannot_renew_or_release_a_successors_lease(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        old, new = Lease(redis, "jobs", ttl=0.2), Lease(redis, "jobs", ttl=5)
        assert await old.acquire()
        await asyncio.sleep(0.3)  # the old leader stalled past its lease
        assert await new.acquire()
        assert not await old.renew()
        await old.release()
        assert await redis.get("leader:jobs") == new.token.encode()
    finally:
        await redis.aclose()


@pytest.mark.integration
async def test_a_crashed_leaders_lease_expires(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        crashed = Lease(redis, "jobs", ttl=0.3)
        assert await crashed.acquire()  # and then never renews nor releases
        successor = Lease(redis, "jobs", ttl=5)
        assert not await successor.acquire()
        await asyncio.sleep(0.4)
        assert await successor.acquire()
    finally:
        await redis.aclose()
