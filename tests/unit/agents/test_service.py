"""AgentService and the SQL agent repository on both databases: track records and their history,
signals stored once, closed bars only, tier-limited consensus, the /ai quota and the watchlist quota."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.agents.consensus import AgentStats, log_odds_weight, prior_stats
from domain.agents.learning import Resolution, Signal, record_resolution, stats_map
from domain.agents.service import AgentService, AiQuotaExceeded, WatchlistFull
from domain.agents.votes import Direction
from domain.db.uow import SqlUsageStore, UnitOfWork
from domain.market.clock import ManualClock
from domain.market.models import Timeframe
from domain.metering import Meter
from domain.tiers import TierCatalog
from domain.trading.market import MarketHub
from domain.trading.models import SymbolNotFound
from domain.users import User
from tests.stores import market

START = datetime(2026, 11, 18, 10, 30, tzinfo=UTC)  # a Wednesday; the 10:00 H1 bar is still forming


@dataclass
class Env:
    sessionmaker: async_sessionmaker[AsyncSession]
    hub: MarketHub
    service: AgentService
    tiers: TierCatalog
    clock: ManualClock
    meter: Meter


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    async with market(db_url, {1: "free", 2: "pro"}, START) as m:
        meter = Meter(SqlUsageStore(m.sessionmaker))
        yield Env(m.sessionmaker, m.hub, AgentService(m.hub, m.tiers, meter), m.tiers, m.clock, meter)


async def _user(env: Env, uid: int) -> User:
    async with UnitOfWork(env.sessionmaker) as uow:
        user = await uow.users.get(uid)
    assert user is not None
    return user


async def test_stats_upsert_list_and_history(env: Env) -> None:
    async with UnitOfWork(env.sessionmaker) as uow:
        repo = uow.agents
        assert await repo.get("trend", "EURUSD", "H1") is None
        first = AgentStats("trend", "EURUSD", "H1", 3.0, 2.0, 1, 0, 100)
        await repo.put(first)
        await repo.put(replace(first, alpha=3.9, beta=3.0, hits=1, misses=1, last_update=200))
        await repo.put(AgentStats("momentum", "EURUSD", "H1", 2.0, 3.0, 0, 1, 150))
        await repo.put(AgentStats("trend", "GBPUSD", "H1", 5.0, 2.0, 3, 0, 150))
        await uow.commit()
    async with UnitOfWork(env.sessionmaker) as uow:
        got = await uow.agents.get("trend", "EURUSD", "H1")
        assert got == AgentStats("trend", "EURUSD", "H1", 3.9, 3.0, 1, 1, 200)
        assert [s.agent for s in await uow.agents.list_for("EURUSD", "H1")] == ["momentum", "trend"]
        history = await uow.agents.history("EURUSD", "H1")
        assert [(p.agent, p.time, p.alpha) for p in history] == [
            ("trend", 100, 3.0), ("trend", 200, 3.9), ("momentum", 150, 2.0)
        ]
        assert [p.time for p in await uow.agents.history("EURUSD", "H1", since=150)] == [200, 150]


async def test_record_resolution_updates_weights_through_the_sql_repository(env: Env) -> None:
    sig = Signal("trend", "EURUSD", "H1", Direction.BUY, 1000, 1.1, 0.001, 5)
    hit = Resolution(sig, True, 0.002, 2.0, 0.003, 0.0, 1.102, 19000)
    async with UnitOfWork(env.sessionmaker) as uow:
        for _ in range(6):
            await record_resolution(uow.agents, hit)
        await uow.commit()
    async with UnitOfWork(env.sessionmaker) as uow:
        stats = await stats_map(uow.agents, "EURUSD", "H1")
    assert stats["trend"].hits == 6 and stats["trend"].weight > 0.5
    assert prior_stats("trend", "EURUSD", "H1").weight == 0.0


async def test_signals_are_stored_once_and_resolve_once(env: Env) -> None:
    async with UnitOfWork(env.sessionmaker) as uow:
        repo = uow.agents
        assert await repo.add_signal("trend", "EURUSD", "H1", "buy", 3600, 1.1, 0.001, 10, 0.5)
        assert not await repo.add_signal("trend", "EURUSD", "H1", "sell", 3600, 1.2, 0.002, 5, 0.9)
        assert await repo.add_signal("consensus", "EURUSD", "H1", "buy", 3600, 1.1, 0.001, 8, 0.6)
        assert await repo.add_signal("consensus", "GBPUSD", "H1", "sell", 7200, 1.3, 0.001, 8, 0.7)
        await uow.commit()
    async with UnitOfWork(env.sessionmaker) as uow:
        repo = uow.agents
        pending = await repo.pending_signals("EURUSD", "H1")
        assert [(p.agent, p.direction, p.entry) for p in pending] == [("trend", "buy", 1.1), ("consensus", "buy", 1.1)]
        assert await repo.resolve_signal(pending[0].id, True, 0.002, 2.0, 40000)
        assert not await repo.resolve_signal(pending[0].id, False, -0.002, -2.0, 40000)
        await uow.commit()
    async with UnitOfWork(env.sessionmaker) as uow:
        repo = uow.agents
        # the default lists the consensus's signals, newest first
        assert [(s.symbol, s.time) for s in await repo.recent_signals()] == [("GBPUSD", 7200), ("EURUSD", 3600)]
        assert await repo.count_signals("EURUSD") == 1
        everyone = await repo.recent_signals("EURUSD", "H1", 10, agent=None)
        trend = next(s for s in everyone if s.agent == "trend")
        assert (trend.status, trend.move, trend.resolved_at) == ("hit", 0.002, 40000)
        assert [s.symbol for s in await repo.top_signals(["EURUSD", "GBPUSD"], since=0)] == ["GBPUSD", "EURUSD"]


async def test_watchlist_subscriptions_and_digest_marks(env: Env) -> None:
    async with UnitOfWork(env.sessionmaker) as uow:
        repo = uow.agents
        assert await repo.subscribe(1, "EURUSD", START)
        assert not await repo.subscribe(1, "EURUSD", START)
        assert await repo.subscribe(2, "EURUSD", START)
        assert await repo.subscribe(2, "XAUUSD", START)
        await repo.mark_digest(1, "2026-11-18", START)
        await uow.commit()
    async with UnitOfWork(env.sessionmaker) as uow:
        repo = uow.agents
        assert await repo.subscribers("EURUSD") == [1, 2]
        assert await repo.subscribed_symbols() == {"EURUSD", "XAUUSD"}
        assert await repo.watchlists() == {1: ["EURUSD"], 2: ["EURUSD", "XAUUSD"]}
        assert await repo.unsubscribe(2, "XAUUSD") and not await repo.unsubscribe(2, "XAUUSD")
        assert await repo.last_digest_day(1) == "2026-11-18" and await repo.last_digest_day(2) is None
        await repo.mark_digest(1, "2026-11-19", START)
        assert await repo.last_digest_day(1) == "2026-11-19"


async def test_consensus_uses_closed_bars_only_and_the_stored_weights(env: Env) -> None:
    async with UnitOfWork(env.sessionmaker) as uow:
        before = await env.service.consensus(uow, "eurusd", Timeframe.H1)
        assert before.time == int(datetime(2026, 11, 18, 9, 0, tzinfo=UTC).timestamp())  # not the forming 10:00
        assert {w.vote.agent for w in before.votes} == {"trend", "reversion", "momentum", "breakout", "learner"}
        assert all(w.weight == 0.0 for w in before.votes)  # no track record yet: a coin
        await uow.agents.put(AgentStats("learner", "EURUSD", "H1", 12.0, 4.0, 10, 2, before.time))
        await uow.commit()
        after = await env.service.consensus(uow, "EURUSD", Timeframe.H1)
    learner = next(w for w in after.votes if w.vote.agent == "learner")
    assert learner.weight == pytest.approx(log_odds_weight(12 / 16)) and learner.hit_rate == 0.75
    env.clock.advance(3600)  # the 10:00 bar closes
    async with UnitOfWork(env.sessionmaker) as uow:
        assert (await env.service.consensus(uow, "EURUSD", Timeframe.H1)).time == before.time + 3600
        with pytest.raises(SymbolNotFound) as err:
            await env.service.consensus(uow, "EURUSDX", Timeframe.H1)
    assert "EURUSD" in err.value.params["suggestions"]


async def test_free_sees_two_agents_and_runs_out_of_analyses(env: Env) -> None:
    free, pro = await _user(env, 1), await _user(env, 2)
    async with UnitOfWork(env.sessionmaker) as uow:
        first = await env.service.analyse(uow, free, env.tiers.get("free"), "EURUSD", Timeframe.H1)
        assert [w.vote.agent for w in first.decision.votes] == ["trend", "momentum"]
        assert first.limited and set(first.locked) == {"reversion", "breakout", "learner"}
        assert (first.used, first.limit) == (1, 3)
        for _ in range(2):
            await env.service.analyse(uow, free, env.tiers.get("free"), "EURUSD", Timeframe.H1)
        with pytest.raises(AiQuotaExceeded) as err:
            await env.service.analyse(uow, free, env.tiers.get("free"), "EURUSD", Timeframe.H1)
        assert err.value.params == {"limit": 3, "tier": "basic", "renews": "00:00"}  # the users here are on UTC
        full = await env.service.analyse(uow, pro, env.tiers.get("pro"), "EURUSD", Timeframe.H1)
    assert len(full.decision.votes) == 5 and not full.limited and full.locked == ()
    await env.meter.flush()  # the analyses are metered like any usage


async def test_watchlist_quota(env: Env) -> None:
    free = await _user(env, 1)
    tier = env.tiers.get("free")
    names = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "AUDUSD"]
    async with UnitOfWork(env.sessionmaker) as uow:
        for name in names:
            assert await env.service.subscribe(uow, free, tier, name.lower()) == name
        assert await env.service.subscribe(uow, free, tier, "EURUSD") == "EURUSD"  # already on it: no quota used
        with pytest.raises(WatchlistFull):
            await env.service.subscribe(uow, free, tier, "NZDUSD")
        assert await env.service.count_watchlist(uow, 1) == 5
        assert await env.service.unsubscribe(uow, free, "gbpusd")
        assert await env.service.subscribe(uow, free, tier, "NZDUSD") == "NZDUSD"
        page = await env.service.signals(uow, free, tier)
    assert sorted(page.watchlist) == ["AUDUSD", "EURUSD", "NZDUSD", "USDJPY", "XAUUSD"] and page.limit == 5
