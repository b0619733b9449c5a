"""Scale-out on real PostgreSQL + Redis (workers/partition.py): symbols asked on a bot replica reach the
worker's market feed, and worker processes split the agent runner's jobs through one consumer group,
taking over the share of a worker that died."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.i18n import create_i18n
from bot.settings import Settings
from domain.agents.consensus import ConsensusDecision
from domain.agents.service import AgentService
from domain.db.engine import create_engine, create_sessionmaker
from domain.db.models import AgentProgressRow
from domain.db.repositories import load_tiers
from domain.db.trading import SqlDemoStore
from domain.db.uow import SqlUsageStore
from domain.market.clock import ManualClock
from domain.market.models import Timeframe
from domain.metering import Meter
from domain.tiers import TierCatalog
from domain.trading.market import MarketHub
from tests.bot.market.conftest import START, Unlimited
from tests.fakes.telegram import FakeTelegram
from tests.harness import Harness, build_harness
from workers.agent_runner import AgentRunner
from workers.partition import WATCH_KEY, AgentJobs, FeedShare, SharedWatch

UNIVERSE = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "USDCHF", "AUDUSD")

pytestmark = pytest.mark.integration


# ---- the shared watch set ----


@pytest.fixture
async def pair(
    pg_url: str, redis_url: str, telegram: FakeTelegram, tmp_path: Path
) -> AsyncIterator[tuple[Harness, Harness]]:
    """A bot replica (WORKERS=external) and a worker on one PostgreSQL + Redis, on one market clock."""
    settings = Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path, secret_key="test-secret")
    bot = await build_harness(settings.model_copy(update={"workers": "external"}), telegram, limiter=Unlimited())
    worker = await build_harness(settings, telegram, limiter=Unlimited())
    clock = ManualClock(START)
    for h in (bot, worker):
        h.app.market.hub.use_clock(clock)
    yield bot, worker
    await bot.close()
    await worker.close()


async def test_symbols_asked_on_a_replica_are_polled_by_the_workers_feed(pair: tuple[Harness, Harness]) -> None:
    bot, worker = pair
    shared, feed = bot.app.market.watchlist, worker.app.market.feed
    assert shared is not None and feed.shared is not None
    published: list[str] = []
    feed.bus.add_listener(lambda tick: published.append(tick.symbol))
    await feed.poll_once()
    assert feed.symbols() == [] and published == []  # nobody asked for anything yet
    reply = await bot.send("/price gbpusd")
    assert "GBPUSD" in reply[-1].text
    await bot.send("/chart XAUUSD H1")
    await shared.flush()
    assert worker.app.market.hub.watched == {}  # the worker process itself was never asked
    for _ in range(300):  # the worker reads the shared set at most once a second
        await feed.poll_once()
        if feed.symbols() == ["GBPUSD", "XAUUSD"]:
            break
        await asyncio.sleep(0.01)
    assert feed.symbols() == ["GBPUSD", "XAUUSD"]
    assert sorted(published) == ["GBPUSD", "XAUUSD"]  # the worker's feed published their ticks
    # asking again for the same symbol costs the replica no Redis round trip
    writes = shared.writes
    for _ in range(3):
        assert "GBPUSD" in (await bot.send("/price GBPUSD"))[-1].text
    await shared.flush()
    assert shared.writes == writes
    redis = Redis.from_url(bot.app.settings.redis_url or "")
    try:
        assert sorted(m.decode() for m in await redis.zrange(WATCH_KEY, 0, -1)) == ["GBPUSD", "XAUUSD"]
    finally:
        await redis.aclose()


@dataclass
class WallClock:
    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_the_shared_watch_set_expires_debounces_and_caches(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    clock = WallClock()
    writer = SharedWatch(redis, ttl=3600, write_every=60, read_every=1, clock=clock)
    reader = SharedWatch(redis, ttl=3600, write_every=60, read_every=1, clock=clock)
    try:
        writer.note(["EURUSD", "GBPUSD"])
        writer.note(["EURUSD"])  # while the first write is in flight: nothing new to write
        await writer.flush()
        assert writer.writes == 1 and await reader.symbols() == {"EURUSD", "GBPUSD"}
        clock.now += 0.5
        writer.note(["USDJPY"])
        await writer.flush()
        assert await reader.symbols() == {"EURUSD", "GBPUSD"} and reader.reads == 1  # cached for a second
        clock.now += 1
        assert await reader.symbols() == {"EURUSD", "GBPUSD", "USDJPY"} and reader.reads == 2
        clock.now += 30
        writer.note(["EURUSD"])  # asked again within a minute: not written again
        await writer.flush()
        assert writer.writes == 2
        clock.now += 3600 - 31 + 10  # GBPUSD and USDJPY were last asked more than an hour ago
        writer.note(["EURUSD"])  # a minute since its last write: refreshed, and the stale ones trimmed
        await writer.flush()
        assert writer.writes == 3
        assert await reader.symbols() == {"EURUSD"}
        assert [m.decode() for m in await redis.zrange(WATCH_KEY, 0, -1)] == ["EURUSD"]
        clock.now += 3601
        assert await reader.symbols() == set()  # expired for readers even before anyone trims it
    finally:
        await redis.aclose()


async def test_without_redis_the_watch_set_stays_in_the_process(harness: Harness) -> None:
    runtime = harness.app.market
    if harness.app.redis is not None:
        assert runtime.watchlist is not None and runtime.feed.shared is runtime.watchlist
        return
    assert runtime.watchlist is None and runtime.feed.shared is None
    await harness.send("/price EURUSD")
    assert list(runtime.hub.watched) == ["EURUSD"] and runtime.feed.symbols() == ["EURUSD"]


# ---- the market feed's share ----


async def test_feeders_split_the_symbols_and_a_dead_ones_share_moves(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    clock = WallClock()
    names = [f"SYM{i:02d}" for i in range(40)]
    w1, w2, w3 = (FeedShare(redis, member=f"w{i}", beat_every=5, ttl=15, clock=clock) for i in (1, 2, 3))
    try:
        for w in (w1, w2, w3):
            await w.beat()
        clock.now += 5
        for w in (w1, w2, w3):
            await w.beat()
        shares = [{n for n in names if w.owns(n)} for w in (w1, w2, w3)]
        assert all(shares) and sum(map(len, shares)) == len(names) and set().union(*shares) == set(names)
        clock.now += 10
        for w in (w1, w2):  # w3 died: it beats no more
            await w.beat()
        clock.now += 6
        for w in (w1, w2):
            await w.beat()
        assert w1.members == ["w1", "w2"]
        after = [{n for n in names if w.owns(n)} for w in (w1, w2)]
        assert set().union(*after) == set(names) and not after[0] & after[1]
        assert shares[0] <= after[0] and shares[1] <= after[1]  # only the dead one's symbols moved
        await w2.leave()
        clock.now += 5
        await w1.beat()
        assert all(w1.owns(n) for n in names)
    finally:
        await redis.aclose()
    lost = FeedShare(Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2), member="w1")
    await lost.beat()
    assert lost.members == [] and lost.owns("EURUSD")  # no Redis: poll everything rather than nothing


async def test_two_workers_feeds_poll_and_judge_disjoint_halves(pair: tuple[Harness, Harness],
                                                               telegram: FakeTelegram) -> None:  # fmt: skip
    bot, worker = pair
    other = await build_harness(worker.app.settings, telegram, limiter=Unlimited())
    try:
        feeds = [worker.app.market.feed, other.app.market.feed]
        for feed, name in zip(feeds, ("feeder-a", "feeder-b"), strict=True):
            assert feed.share is not None
            feed.share.member = name  # fixed names: random ones leave one worker nothing 1 time in 32
            feed.share._beat_every = 0  # read the members on every poll
        bot.app.market.hub.watch(UNIVERSE)
        assert bot.app.market.watchlist is not None
        await bot.app.market.watchlist.flush()
        for feed in feeds:
            await feed.share.beat()  # type: ignore[union-attr]
        for _ in range(300):
            for feed in feeds:
                await feed.poll_once()
            polled = [set(feed.symbols()) for feed in feeds]
            if all(polled) and set().union(*polled) == set(UNIVERSE):
                break
            await asyncio.sleep(0.01)
        assert all(len(feed.share.members) == 2 for feed in feeds)  # type: ignore[union-attr]
        assert all(polled) and not polled[0] & polled[1] and set().union(*polled) == set(UNIVERSE)
        judged: list[list[str]] = [[], []]
        for feed, seen in zip(feeds, judged, strict=True):
            feed.evaluator.on_tick = lambda tick, seen=seen: seen.append(tick.symbol) or []  # type: ignore[misc]
            for symbol in UNIVERSE:
                feed.bus.publish(await feed.hub.tick(symbol))
        assert [set(j) for j in judged] == polled  # each tick's alerts are judged by its symbol's feeder only
    finally:
        await other.close()


# ---- the agent jobs ----


@dataclass
class Worker:
    """One worker process's agent runner and its consumer."""

    runner: AgentRunner
    jobs: AgentJobs
    seen: list[str] = field(default_factory=list)  # symbols whose closed bar it processed

    async def drain(self) -> None:
        """Take jobs until none is left undelivered or unacknowledged (by any worker)."""
        while await self.jobs.lag() or await self.jobs.pending():
            await self.jobs.work_once(self.runner, block=0.05)


@dataclass
class Env:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    tiers: TierCatalog
    redis: Redis
    clock: ManualClock

    async def worker(self, name: str, **options: float) -> Worker:
        """A fresh process: its own hub, service, runner and consumer over the same PostgreSQL and Redis."""
        hub = MarketHub(clock=self.clock)
        await hub.start(SqlDemoStore(self.sessionmaker))
        service = AgentService(hub, self.tiers, Meter(SqlUsageStore(self.sessionmaker)))
        jobs = AgentJobs(self.redis, consumer=name, **options)  # type: ignore[arg-type]
        runner = AgentRunner(service, self.sessionmaker, self.tiers, create_i18n(), universe=UNIVERSE, partition=jobs)
        w = Worker(runner, jobs)

        async def seen(symbol: str, tf: Timeframe, decision: ConsensusDecision) -> None:
            w.seen.append(symbol)

        runner.add_listener(seen)
        return w

    async def progress(self) -> dict[str, int]:
        async with self.sessionmaker() as s:
            rows = (await s.execute(select(AgentProgressRow.symbol, AgentProgressRow.last_bar))).all()
        return {symbol: last for symbol, last in rows}


@pytest.fixture
async def env(pg_url: str, redis_url: str) -> AsyncIterator[Env]:
    engine = create_engine(pg_url)
    sm = create_sessionmaker(engine)
    async with sm() as s:
        tiers = TierCatalog(await load_tiers(s))
    redis = Redis.from_url(redis_url)
    yield Env(engine, sm, tiers, redis, ManualClock(START))
    await redis.aclose()
    await engine.dispose()


async def test_two_workers_split_the_jobs_and_each_job_is_processed_once(env: Env) -> None:
    a, b = await env.worker("a"), await env.worker("b")
    offered = await asyncio.gather(a.jobs.offer(a.runner, 60), b.jobs.offer(b.runner, 60))
    assert sorted(offered, key=str) == [6, None]  # one process enqueued the pass, the other saw it taken
    assert await env.redis.xlen(a.jobs.stream) == len(UNIVERSE)
    await asyncio.gather(a.drain(), b.drain())
    assert a.seen and b.seen, (a.seen, b.seen)  # both took a share
    assert not set(a.seen) & set(b.seen) and sorted(a.seen + b.seen) == sorted(UNIVERSE)  # each job once
    assert a.jobs.handled + b.jobs.handled == len(UNIVERSE) and await a.jobs.pending() == 0
    assert a.runner.processed + b.runner.processed == len(UNIVERSE)
    assert set(await env.progress()) == set(UNIVERSE)
    # the next pass, after a bar closed: the new bar of each symbol, once
    env.clock.advance(3600)
    await env.redis.delete(f"agents:jobs:pass:{a.jobs.stream}")  # the pass interval ran out
    assert await b.jobs.offer(b.runner, 60) == len(UNIVERSE)
    await asyncio.gather(a.drain(), b.drain())
    assert sorted(a.seen + b.seen) == sorted(UNIVERSE * 2)
    assert set((await env.progress()).values()) == {int(START.timestamp())}  # the 10:00 bar closed at 11:00


async def test_a_pass_is_not_enqueued_again_while_its_jobs_wait(env: Env) -> None:
    a = await env.worker("a")
    assert await a.jobs.offer(a.runner, 0.05) == len(UNIVERSE)
    assert await a.jobs.offer(a.runner, 0.05) is None  # within the interval: the pass is taken
    await asyncio.sleep(0.1)
    assert await a.jobs.offer(a.runner, 0.05) == 0  # the last pass's jobs still wait: they do the same work
    assert await env.redis.xlen(a.jobs.stream) == len(UNIVERSE)


async def test_a_dead_workers_jobs_are_taken_over(env: Env) -> None:
    a, b = await env.worker("a"), await env.worker("b", claim_idle=60)
    assert await a.jobs.offer(a.runner, 60) == len(UNIVERSE)
    taken = await a.jobs.take(2)  # ... and then the process dies before processing and acknowledging them
    lost = sorted(symbol for _, symbol, _ in taken)
    assert len(lost) == 2 and await a.jobs.pending() == 2
    while await b.jobs.lag():
        await b.jobs.work_once(b.runner, block=0.05)
    assert sorted(b.seen) == sorted(set(UNIVERSE) - set(lost)) and b.jobs.claimed == 0  # not idle long enough
    assert await b.jobs.pending() == 2
    b.jobs.claim_idle = 0.2  # now they have been pending longer than the take-over delay
    await asyncio.sleep(0.3)
    while await b.jobs.pending():
        await b.jobs.work_once(b.runner, block=0.05)
    assert b.jobs.claimed == 2 and sorted(b.seen) == sorted(UNIVERSE) and a.seen == []
    assert set(await env.progress()) == set(UNIVERSE)
    info = await env.redis.xinfo_consumers(a.jobs.stream, a.jobs.group)
    assert {c["name"].decode(): c["pending"] for c in info} == {"a": 0, "b": 0}


async def test_workers_run_forever_on_the_shared_stream(env: Env) -> None:
    a, b = await env.worker("a"), await env.worker("b")
    tasks = [asyncio.create_task(w.runner.run_forever()) for w in (a, b)]  # interval 30 s: one pass here
    try:
        for _ in range(500):
            if len(a.seen) + len(b.seen) == len(UNIVERSE) and not await a.jobs.pending():
                break
            await asyncio.sleep(0.02)
        assert sorted(a.seen + b.seen) == sorted(UNIVERSE)
        assert await env.redis.xlen(a.jobs.stream) == len(UNIVERSE)  # one of them enqueued the pass, once
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with pytest.raises(asyncio.CancelledError):
                await t
    async with env.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(AgentProgressRow)) == len(UNIVERSE)


async def test_a_malformed_job_is_dropped(env: Env) -> None:
    a = await env.worker("a")
    await a.jobs.ensure_group()
    await env.redis.xadd(a.jobs.stream, {"symbol": "EURUSD", "tf": "H7"})
    await a.jobs.work_once(a.runner, block=0.05)
    assert a.seen == [] and a.jobs.handled == 1 and await a.jobs.pending() == 0
