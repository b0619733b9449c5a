"""The agent runner on the simulated terminal and both databases: each closed bar once (reruns and
restarts included), signals resolved with real bars, weights that change and survive a restart,
listeners and symbol providers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.i18n import create_i18n
from domain.agents.consensus import AgentStats, ConsensusDecision
from domain.agents.service import AgentService
from domain.db.engine import create_engine, create_sessionmaker
from domain.db.models import AgentSignalRow, AgentStatsHistoryRow
from domain.db.repositories import load_tiers
from domain.db.trading import SqlDemoStore
from domain.db.uow import SqlUsageStore, UnitOfWork
from domain.market.clock import ManualClock
from domain.market.models import Timeframe
from domain.metering import Meter
from domain.tiers import TierCatalog
from domain.trading.market import MarketHub
from workers.agent_runner import DEFAULT_UNIVERSE, AgentRunner

START = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
AGENTS = ("trend", "reversion", "momentum", "breakout", "learner")


@dataclass
class Env:
    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    tiers: TierCatalog
    clock: ManualClock

    async def runner(self, universe: tuple[str, ...] = ("EURUSD",)) -> AgentRunner:
        """A fresh process's runner: new hub, service and caches over the same database and clock."""
        hub = MarketHub(clock=self.clock)
        await hub.start(SqlDemoStore(self.sessionmaker))
        service = AgentService(hub, self.tiers, Meter(SqlUsageStore(self.sessionmaker)))
        return AgentRunner(service, self.sessionmaker, self.tiers, create_i18n(), universe=universe)


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    engine = create_engine(db_url)
    sm = create_sessionmaker(engine)
    async with sm() as s:
        tiers = TierCatalog(await load_tiers(s))
    yield Env(db_url, engine, sm, tiers, ManualClock(START))
    await engine.dispose()


async def _seed(env: Env, symbol: str = "EURUSD") -> None:
    """Agents with a good record, so the consensus can call (a fresh agent weighs 0, like a coin)."""
    async with UnitOfWork(env.sessionmaker) as uow:
        for agent in AGENTS:
            await uow.agents.put(AgentStats(agent, symbol, "H1", 30.0, 10.0, 28, 8, 0))
        await uow.commit()


async def _count(env: Env, model: type, **where: object) -> int:
    async with env.sessionmaker() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return int(await s.scalar(q) or 0)


async def test_each_closed_bar_is_processed_once_across_reruns_and_restarts(env: Env) -> None:
    runner = await env.runner(DEFAULT_UNIVERSE)
    assert await runner.run_once() == len(DEFAULT_UNIVERSE)  # each symbol's latest closed bar
    signals = await _count(env, AgentSignalRow)
    assert await runner.run_once() == 0  # nothing closed since
    env.clock.advance(1800)
    assert await runner.run_once() == 0  # the 10:00 bar is still forming
    env.clock.advance(1800)
    assert await runner.run_once() == len(DEFAULT_UNIVERSE)
    restarted = await env.runner(DEFAULT_UNIVERSE)
    assert await restarted.run_once() == 0  # the progress mark survived the restart
    env.clock.advance(3 * 3600)  # down for three bars: a restart catches up with each of them
    assert await restarted.run_once() == 3 * len(DEFAULT_UNIVERSE)
    async with env.sessionmaker() as s:
        rows = (await s.execute(select(AgentSignalRow.agent, AgentSignalRow.symbol, AgentSignalRow.time))).all()
    assert len(rows) == len(set(rows)) >= signals  # UNIQUE(agent, symbol, tf, time): never a duplicate
    assert {symbol for _, symbol, _ in rows} <= set(DEFAULT_UNIVERSE)


async def test_resolved_signals_change_weights_and_the_weights_survive_a_restart(env: Env) -> None:
    await _seed(env)
    runner = await env.runner()
    await runner.run_once()
    for _ in range(24):
        env.clock.advance(3600)
        await runner.run_once()
    async with UnitOfWork(env.sessionmaker) as uow:
        stats = {s.agent: s for s in await uow.agents.list_for("EURUSD", "H1")}
        resolved = [s for s in await uow.agents.recent_signals("EURUSD", "H1", 500, agent=None) if s.status != "pending"]
    assert resolved and all(s.status in ("hit", "miss") and s.move is not None for s in resolved)
    for s in resolved:  # a hit moved its way by at least the threshold, a miss did not
        assert (s.status == "hit") == (s.move > 0 and s.move >= 0.1 * s.atr - 1e-12)
    changed = [a for a in AGENTS if (stats[a].hits, stats[a].misses) != (28, 8)]
    assert changed, "no agent's record moved after a day of bars"
    assert "consensus" in stats  # the consensus keeps its own record too
    assert await _count(env, AgentStatsHistoryRow) >= 5 + len(resolved)
    # A new process (new engine, hub, service) sees the same weights.
    engine = create_engine(env.url)
    try:
        sm = create_sessionmaker(engine)
        hub = MarketHub(clock=env.clock)
        await hub.start(SqlDemoStore(sm))
        service = AgentService(hub, env.tiers, Meter(SqlUsageStore(sm)))
        async with UnitOfWork(sm) as uow:
            decision = await service.consensus(uow, "EURUSD", Timeframe.H1)
    finally:
        await engine.dispose()
    for wv in decision.votes:
        assert wv.weight == pytest.approx(stats[wv.vote.agent].weight)
        assert wv.hit_rate == pytest.approx(stats[wv.vote.agent].mean)


async def test_listeners_get_every_bar_and_one_failing_listener_stops_no_other(env: Env) -> None:
    await _seed(env)
    runner = await env.runner()
    seen: list[tuple[str, Timeframe, ConsensusDecision]] = []

    async def broken(symbol: str, tf: Timeframe, decision: ConsensusDecision) -> None:
        raise RuntimeError("listener bug")

    async def record(symbol: str, tf: Timeframe, decision: ConsensusDecision) -> None:
        seen.append((symbol, tf, decision))

    async def more() -> set[str]:
        return {"gbpusd"}

    async def failing() -> set[str]:
        raise RuntimeError("provider bug")

    runner.add_listener(broken)
    runner.add_listener(record)
    runner.add_symbols(more)
    runner.add_symbols(failing)
    assert await runner.run_once() == 2
    env.clock.advance(2 * 3600)
    assert await runner.run_once() == 4
    assert [(s, tf) for s, tf, _ in seen] == [("EURUSD", Timeframe.H1), ("GBPUSD", Timeframe.H1)] * 1 + [
        ("EURUSD", Timeframe.H1), ("EURUSD", Timeframe.H1), ("GBPUSD", Timeframe.H1), ("GBPUSD", Timeframe.H1)
    ]
    eurusd = [d for s, _, d in seen if s == "EURUSD"]
    assert [d.time for d in eurusd] == sorted(d.time for d in eurusd) and len({d.time for d in eurusd}) == 3
    assert all(len(d.votes) == len(AGENTS) for d in eurusd)
    async with UnitOfWork(env.sessionmaker) as uow:
        stored = await uow.agents.recent_signals("EURUSD", "H1", 10)  # the consensus's own signals
    called = {d.time: d for d in eurusd if d.direction.value != "flat"}
    assert {s.time: s.direction for s in stored} == {t: d.direction.value for t, d in called.items()}
