"""The /risk limits hold under concurrency: the check and the send run under one lock per account.

Two confirmations racing under ``max_positions 1`` open exactly one position, and so do two auto-trading
decisions arriving at once. "Two processes" are two hubs and two services over one database, each with the
lock its deployment would use: PostgreSQL's advisory lock, a Redis lock (SQLite shared through Redis), or on
SQLite alone one process's asyncio lock (the same service twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from domain.agents.agents import default_agents
from domain.agents.consensus import AgentStats, ConsensusDecision, decide
from domain.agents.risk import RiskAgent
from domain.agents.series import Series
from domain.agents.votes import Direction
from domain.db.engine import create_engine, create_sessionmaker
from domain.db.models import AuditRow, OrderRow
from domain.db.trading import SqlDemoStore
from domain.db.uow import UnitOfWork
from domain.market.models import Side, Timeframe
from domain.trading.autotrade import AutoTrader, Outcome
from domain.trading.crypto import SecretBox
from domain.trading.models import AccountBusy
from domain.trading.locks import AccountLocks, LocalLocks, PgAdvisoryLocks, RedisLocks
from domain.trading.market import MarketHub
from domain.trading.service import TradingService
from domain.users import UserService
from tests.stores import Market, market

START = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday: markets open
USER = 1
SECRET = b"unit-test-secret"


@dataclass
class Twin:
    """One "process": its hub, trading service and auto-trader."""

    hub: MarketHub
    trading: TradingService
    auto: AutoTrader


@dataclass
class Env:
    m: Market
    a: Twin
    b: Twin

    def unit(self) -> UnitOfWork:
        return UnitOfWork(self.m.sessionmaker)


@pytest.fixture(params=["sqlite", pytest.param("sqlite+redis", marks=pytest.mark.integration),
                        pytest.param("postgres", marks=pytest.mark.integration)])  # fmt: skip
def stack(request: pytest.FixtureRequest) -> tuple[str, str, str | None]:
    """(stack, database url, Redis url)."""
    url = request.getfixturevalue("pg_url" if request.param == "postgres" else "sqlite_url")
    redis = request.getfixturevalue("redis_url") if request.param == "sqlite+redis" else None
    return request.param, url, redis


@pytest.fixture
async def env(stack: tuple[str, str, str | None]) -> AsyncIterator[Env]:
    stack, url, redis_url = stack
    async with market(url, {USER: "pro"}, START) as m:
        closers: list[object] = []

        def twin(hub: MarketHub, locks: AccountLocks) -> Twin:
            trading = TradingService(hub, m.tiers, SecretBox(SECRET), locks=locks)
            auto = AutoTrader(lambda: UnitOfWork(m.sessionmaker), trading, UserService(m.tiers), m.tiers)
            return Twin(hub, trading, auto)

        a = twin(m.hub, _locks(stack, m, closers, redis_url))
        if stack == "sqlite":  # one process: the second "confirmation" comes through the same service
            b = a
        else:
            hub_b = MarketHub(clock=m.clock)
            engine_b = create_engine(url)
            closers.append(engine_b)
            await hub_b.start(SqlDemoStore(create_sessionmaker(engine_b)))
            closers.append(hub_b)
            b = twin(hub_b, _locks(stack, m, closers, redis_url, engine_b))
        try:
            yield Env(m, a, b)
        finally:
            for c in closers:
                if isinstance(c, MarketHub):
                    await c.close()
                elif isinstance(c, Redis):
                    await c.aclose()
                else:
                    await c.dispose()  # type: ignore[attr-defined]


def _locks(stack: str, m: Market, closers: list[object], redis_url: str | None,
           engine: AsyncEngine | None = None) -> AccountLocks:  # fmt: skip
    if stack == "postgres":
        return PgAdvisoryLocks(engine or m.engine)
    if redis_url is not None:
        redis = Redis.from_url(redis_url)
        closers.append(redis)
        return RedisLocks(redis)
    return LocalLocks()


async def _limit_one_position(env: Env) -> None:
    async with env.unit() as uow:
        await env.a.trading.set_limit(uow, USER, "max_positions", "1")


async def _preview(t: Twin, env: Env, symbol: str = "EURUSD") -> str:
    async with env.unit() as uow:
        p = await t.trading.preview_open(uow, USER, env.m.tiers.get("pro"), Side.BUY, symbol, 0.1, None, None)
        return p.order.id


async def _confirm(t: Twin, env: Env, order_id: str) -> tuple[float, object]:
    started = time.perf_counter()
    async with env.unit() as uow:
        result = await t.trading.execute(uow, USER, env.m.tiers.get("pro"), order_id)
    return time.perf_counter() - started, result


async def _positions(env: Env) -> list:  # type: ignore[type-arg]
    async with env.unit() as uow:
        _, _, positions, _ = await env.a.trading.positions(uow, USER, env.m.tiers.get("pro"))
        return positions


async def _statuses(env: Env) -> list[str]:
    async with env.m.sessionmaker() as s:
        return sorted(r.status for r in (await s.execute(select(OrderRow))).scalars())


def _rendezvous(env: Env) -> None:
    """Each risk check waits (up to a second) for the other confirmation's check before sending: without the
    lock both read the account before either sends; with it the second waits for the first's send."""
    arrived, both = [0], asyncio.Event()
    for twin in {id(t): t for t in (env.a, env.b)}.values():
        original = twin.trading.check_risk

        async def check(profile, gw, order, _original=original):  # type: ignore[no-untyped-def]
            breach = await _original(profile, gw, order)
            arrived[0] += 1
            if arrived[0] >= 2:
                both.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(both.wait(), 1.0)
            return breach

        twin.trading.check_risk = check  # type: ignore[method-assign]


async def test_two_concurrent_confirms_under_max_positions_1_open_exactly_one(env: Env) -> None:
    await _limit_one_position(env)
    first, second = await _preview(env.a, env), await _preview(env.b, env, "GBPUSD")
    _rendezvous(env)
    await asyncio.gather(_confirm(env.a, env, first), _confirm(env.b, env, second))
    assert len(await _positions(env)) == 1
    assert await _statuses(env) == ["blocked", "done"]
    async with env.m.sessionmaker() as s:
        blocked = (await s.execute(select(AuditRow).where(AuditRow.action == "trade.blocked"))).scalar_one()
    assert blocked.details["rule"] == "max_positions"
    # the lock's cost per order (printed with -s, never asserted): confirmations alone, with and without it
    await _close_all(env)
    for twin in {id(t): t for t in (env.a, env.b)}.values():
        del twin.trading.check_risk  # type: ignore[method-assign]
    locks, name = env.a.trading.locks, type(env.a.trading.locks).__name__
    timings: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(8):
        for label, use in (("with", locks), ("without", _NoLock())):
            env.a.trading.locks = use  # type: ignore[assignment]
            elapsed, _ = await _confirm(env.a, env, await _preview(env.a, env))
            timings[label].append(elapsed * 1000)
            await _close_all(env)
    env.a.trading.locks = locks
    med = {k: statistics.median(v) for k, v in timings.items()}
    started = time.perf_counter()
    for _ in range(100):
        async with locks.hold("demo", 1):
            pass
    alone = (time.perf_counter() - started) * 10  # ms per acquire + release
    print(f"\n[{name}] confirm median of 8: {med['with']:.1f} ms with the lock, {med['without']:.1f} ms without; "
          f"the lock alone {alone:.2f} ms per order")  # fmt: skip


async def test_two_concurrent_auto_trade_decisions_open_exactly_one(env: Env) -> None:
    await _limit_one_position(env)
    async with env.unit() as uow:
        await env.a.auto.set_enabled(uow, USER, env.m.tiers.get("pro"), True)
        settings = replace(await env.a.auto.settings(uow, USER), symbols=("XAUUSD", "EURUSD"))
        await uow.autotrade.save(settings, START)
        await uow.commit()
    gold = await _decision(env.a.hub, "XAUUSD")
    _rendezvous(env)
    euro = gold  # the same consensus on EURUSD's bar of the same hour (the auto-trader sizes it on EURUSD's bars)
    results = await asyncio.gather(
        env.a.auto.on_decision("XAUUSD", Timeframe.H1, gold), env.b.auto.on_decision("EURUSD", Timeframe.H1, euro)
    )
    outcomes = sorted(r.outcome.value for batch in results for r in batch)
    assert outcomes == sorted([Outcome.PLACED.value, Outcome.BLOCKED.value]), [r.report for b in results for r in b]
    assert len(await _positions(env)) == 1


class _NoLock:
    def hold(self, kind: str, login: int, *, wait: float = 0):  # type: ignore[no-untyped-def]
        return _Nothing()


class _Nothing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


async def _close_all(env: Env) -> None:
    async with env.unit() as uow:
        preview = await env.a.trading.preview_close(uow, USER, env.m.tiers.get("pro"), "all", None)
        await env.a.trading.execute(uow, USER, env.m.tiers.get("pro"), preview.order.id)


async def _decision(hub: MarketHub, symbol: str) -> ConsensusDecision:
    """The real agents' consensus at the last closed H1 bar (a SELL with these track records)."""
    now = hub.terminal.now_ms() // 1000
    bars = [b for b in await hub.bars(symbol, Timeframe.H1, 401) if b.time + Timeframe.H1.seconds <= now]
    series = Series.from_bars(bars, symbol=symbol, timeframe=Timeframe.H1)
    votes = [agent.vote(series) for agent in default_agents()]
    stats = {v.agent: AgentStats(v.agent, symbol, "H1", alpha=30, beta=10) for v in votes}
    d = decide(votes, stats, RiskAgent().assess(series))
    assert d.direction is not Direction.FLAT and not d.vetoed
    return d


@pytest.mark.integration
async def test_a_second_process_waits_for_the_lock_and_gives_up_with_account_busy(pg_url: str) -> None:
    engines = [create_engine(pg_url), create_engine(pg_url)]
    first, second = PgAdvisoryLocks(engines[0]), PgAdvisoryLocks(engines[1])
    try:
        async with first.hold("live", 42):
            with pytest.raises(AccountBusy):
                async with second.hold("live", 42, wait=0.2):
                    pass
            async with second.hold("live", 43, wait=0.2):  # another account is not held
                pass
        async with second.hold("live", 42, wait=0.2):  # released with the first's transaction
            pass
    finally:
        for engine in engines:
            await engine.dispose()
