"""AutoTrader on both databases: orders from real consensus decisions, sized by the Risk agent within the
/risk limits, one per signal (also after a restart), stopped by the kill switch, gated by tier, demo unless
live auto-trading was confirmed a second time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.agents.agents import default_agents
from domain.agents.consensus import AgentStats, ConsensusDecision, decide
from domain.agents.risk import RiskAgent, RiskBudget, SizingSpec
from domain.agents.series import Series
from domain.agents.votes import Direction
from domain.audit import Surface
from domain.db.models import AuditRow, AutoTradeRow, OrderRow, UserRow
from domain.db.uow import UnitOfWork
from domain.errors import FeatureLocked, InvalidInput
from domain.market.clock import ManualClock
from domain.market.gateway import OrderRequest
from domain.market.models import Side, Timeframe
from domain.tiers import Tier, TierCatalog
from domain.trading.autotrade import (
    AutoReport,
    AutoSettingOutOfRange,
    AutoTrader,
    Outcome,
    Stance,
    TooManySymbols,
    stance,
)
from domain.trading.crypto import SecretBox
from domain.trading.market import MarketHub
from domain.trading.models import AccountKind, NoLiveAccount, SymbolNotFound
from domain.trading.service import TradingService
from domain.users import UserService
from tests.stores import market

START = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday: markets open
PRO, FREE, BASIC = 1, 2, 3


@dataclass
class Env:
    sessionmaker: async_sessionmaker[AsyncSession]
    hub: MarketHub
    trading: TradingService
    tiers: TierCatalog
    clock: ManualClock
    users: UserService
    auto: AutoTrader
    reports: list[AutoReport] = field(default_factory=list)

    def unit(self) -> UnitOfWork:
        return UnitOfWork(self.sessionmaker)

    def tier(self, user: int) -> Tier:
        return self.tiers.get({PRO: "pro", FREE: "free", BASIC: "basic"}[user])


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    async with market(db_url, {PRO: "pro", FREE: "free", BASIC: "basic"}, START) as m:
        sm, tiers = m.sessionmaker, m.tiers
        trading = TradingService(m.hub, tiers, SecretBox(b"unit-test-secret"))
        users = UserService(tiers)
        reports: list[AutoReport] = []

        async def collect(report: AutoReport) -> None:
            reports.append(report)

        auto = AutoTrader(lambda: UnitOfWork(sm), trading, users, tiers, reporter=collect,
                          timeframes=(Timeframe.H1, Timeframe.H4))  # fmt: skip
        yield Env(sm, m.hub, trading, tiers, m.clock, users, auto, reports)


# ---- real decisions -----------------------------------------------------------------------------


async def closed_series(env: Env, symbol: str, tf: Timeframe = Timeframe.H1, n: int = 400) -> Series:
    now = env.hub.terminal.now_ms() // 1000
    bars = [b for b in await env.hub.bars(symbol, tf, n + 1) if b.time + tf.seconds <= now]
    return Series.from_bars(bars, symbol=symbol, timeframe=tf)


async def decision(env: Env, symbol: str = "XAUUSD", hit_rate: tuple[float, float] = (30, 10),
                   series: Series | None = None) -> ConsensusDecision:  # fmt: skip
    """The real agents' consensus at the last closed bar, with track records of ``alpha, beta``."""
    series = series if series is not None else await closed_series(env, symbol)
    votes = [agent.vote(series) for agent in default_agents()]
    stats = {v.agent: AgentStats(v.agent, symbol, "H1", alpha=hit_rate[0], beta=hit_rate[1]) for v in votes}
    return decide(votes, stats, RiskAgent().assess(series))


async def enable(env: Env, user: int = PRO, symbols: tuple[str, ...] = ("XAUUSD",), **changes: object) -> None:
    async with env.unit() as uow:
        await env.auto.set_enabled(uow, user, env.tier(user), True)
        settings = replace(await env.auto.settings(uow, user), symbols=symbols, **changes)  # type: ignore[arg-type]
        await uow.autotrade.save(settings, START)
        await uow.commit()


async def orders(env: Env) -> list[OrderRow]:
    async with env.sessionmaker() as s:
        return list((await s.execute(select(OrderRow).order_by(OrderRow.created_at))).scalars())


async def audit(env: Env, action: str) -> list[AuditRow]:
    async with env.sessionmaker() as s:
        return list((await s.execute(select(AuditRow).where(AuditRow.action == action))).scalars())


async def positions(env: Env, user: int = PRO, kind: AccountKind = AccountKind.DEMO) -> list:  # type: ignore[type-arg]
    async with env.unit() as uow:
        _account, gw = await env.trading.active(uow, user, env.tier(user), kind)
        return await gw.positions()


async def set_profile(env: Env, user: int, **changes: object) -> None:
    async with env.unit() as uow:
        profile = replace(await uow.trading.profile(user), **changes)  # type: ignore[arg-type]
        await uow.trading.save_profile(profile, START)
        await uow.commit()


# ---- the tests ----------------------------------------------------------------------------------


async def test_the_real_decision_used_here_is_a_sell_with_the_expected_confidence(env: Env) -> None:
    d = await decision(env)
    assert d.direction is Direction.SELL and not d.vetoed
    assert d.confidence == pytest.approx(0.75)
    assert d.time == (await closed_series(env, "XAUUSD")).time[-1]


async def test_places_an_order_sized_by_the_risk_agent_within_limits_and_audits_it(env: Env) -> None:
    await enable(env, risk_pct=1.0)
    d = await decision(env)
    results = await env.auto.on_decision("XAUUSD", Timeframe.H1, d)
    assert [r.outcome for r in results] == [Outcome.PLACED]
    # the volume is what the Risk agent sizes for 1% of the demo equity at its ATR stop
    series = await closed_series(env, "XAUUSD")
    spec = await env.hub.resolve("XAUUSD")
    vote = RiskAgent().assess(series, RiskBudget(10_000.0, 1.0), SizingSpec.from_symbol(spec))
    assert vote.sizing is not None and vote.sizing.volume > 0
    [pos] = await positions(env)
    assert pos.symbol == "XAUUSD" and pos.side is Side.SELL and pos.volume == vote.sizing.volume
    assert pos.sl is not None and pos.tp is not None
    assert pos.sl - pos.price_open == pytest.approx(vote.stop_distance, abs=0.02)  # the ATR stop
    assert pos.price_open - pos.tp == pytest.approx(2 * vote.stop_distance, abs=0.02)  # TP at twice the stop
    [order] = await orders(env)
    assert order.account_kind == "demo" and order.status == "done"
    p = order.params
    assert p["auto"] is True and p["bar_time"] == d.time and p["timeframe"] == "H1"
    assert p["confidence"] == pytest.approx(0.75) and p["agreement"] == pytest.approx(d.agreement, abs=1e-4)
    # the risk at the stop stays within the chosen 1% (and so within the 2% /risk limit)
    report = results[0].report
    assert report is not None and report.risk_pct is not None and 0.5 < report.risk_pct <= 1.0
    assert env.reports == [report] and report.key == f"autotrade:{PRO}:XAUUSD:H1:{d.time}"
    # every step audited from the worker surface, with the decision
    for action in ("trade.previewed", "trade.executed", "autotrade.order"):
        [row] = await audit(env, action)
        assert row.surface == Surface.WORKER.value and row.details["auto"] is True
        assert row.details["confidence"] == pytest.approx(0.75)
    [claim] = await _claims(env)
    assert (claim.user_id, claim.symbol, claim.bar_time, claim.status, claim.order_id) == (
        PRO, "XAUUSD", d.time, "placed", order.id)


async def _claims(env: Env) -> list[AutoTradeRow]:
    async with env.sessionmaker() as s:
        return list((await s.execute(select(AutoTradeRow))).scalars())


async def test_one_order_per_signal_even_called_twice_concurrently_and_after_a_restart(env: Env) -> None:
    await enable(env)
    d = await decision(env)
    first, second = await asyncio.gather(
        env.auto.on_decision("XAUUSD", Timeframe.H1, d), env.auto.on_decision("XAUUSD", Timeframe.H1, d)
    )
    outcomes = sorted(r.outcome.value for r in first + second)
    assert outcomes in (["duplicate", "placed"], ["holding", "placed"])
    assert len(await orders(env)) == 1
    # the position is closed by hand; a restarted process hears the same bar again: still nothing new
    [pos] = await positions(env)
    async with env.unit() as uow:
        _account, gw = await env.trading.active(uow, PRO, env.tier(PRO))
    await gw.order_send(OrderRequest.close("XAUUSD", pos.ticket, None))
    restarted = AutoTrader(env.unit, env.trading, UserService(env.tiers), env.tiers)
    again = await restarted.on_decision("XAUUSD", Timeframe.H1, d)
    assert [r.outcome for r in again] == [Outcome.DUPLICATE]
    assert len(await orders(env)) == 1 and await positions(env) == []
    assert len(await _claims(env)) == 1


async def test_kill_switch_stops_it_and_nothing_goes_out(env: Env) -> None:
    await enable(env)
    await set_profile(env, PRO, kill_switch=True)
    d = await decision(env)
    assert [r.outcome for r in await env.auto.on_decision("XAUUSD", Timeframe.H1, d)] == [Outcome.KILLED]
    assert await orders(env) == [] and env.reports == [] and await positions(env) == []


async def test_kill_switch_pressed_while_an_order_is_in_flight_stops_it_at_once(env: Env) -> None:
    await enable(env)
    original = env.trading.preview_open

    async def preview_then_kill(*args, **kwargs):  # type: ignore[no-untyped-def]
        preview = await original(*args, **kwargs)
        await set_profile(env, PRO, kill_switch=True)  # the user hits the kill switch right now
        return preview

    env.trading.preview_open = preview_then_kill  # type: ignore[method-assign]
    results = await env.auto.on_decision("XAUUSD", Timeframe.H1, await decision(env))
    assert [r.outcome for r in results] == [Outcome.KILLED]
    [order] = await orders(env)
    assert order.status == "blocked" and order.result["rule"] == "kill_switch"
    assert await positions(env) == [] and env.reports == []  # not sent, and not even reported
    [row] = await audit(env, "trade.blocked")
    assert row.surface == "worker"


async def test_threshold_flat_and_veto_place_nothing(env: Env) -> None:
    await enable(env, threshold=0.7)
    weak = await decision(env, hit_rate=(12, 8))  # the backers hit 60% of the time
    assert weak.direction is Direction.SELL and weak.confidence == pytest.approx(0.6)
    assert [r.outcome for r in await env.auto.on_decision("XAUUSD", Timeframe.H1, weak)] == [Outcome.BELOW]
    no_record = await decision(env, hit_rate=(2, 2))  # a coin's record: weight 0, no consensus
    assert no_record.direction is Direction.FLAT
    assert await env.auto.on_decision("XAUUSD", Timeframe.H1, no_record) == []
    vetoed = replace(await decision(env), vetoed=True)
    assert await env.auto.on_decision("XAUUSD", Timeframe.H1, vetoed) == []
    async with env.unit() as uow:
        await env.auto.set_threshold(uow, PRO, env.tier(PRO), "55")
    assert [r.outcome for r in await env.auto.on_decision("XAUUSD", Timeframe.H1, weak)] == [Outcome.PLACED]
    assert len(await orders(env)) == 1


async def test_only_the_latest_closed_bar_trades(env: Env) -> None:
    await enable(env)
    series = await closed_series(env, "XAUUSD")
    old = await decision(env, series=series[: len(series) - 1])
    assert old.direction is not Direction.FLAT
    assert [r.outcome for r in await env.auto.on_decision("XAUUSD", Timeframe.H1, old)] == [Outcome.STALE]
    assert await orders(env) == []


async def test_other_symbols_and_timeframes_are_ignored(env: Env) -> None:
    await enable(env, symbols=("EURUSD",))
    d = await decision(env)
    assert await env.auto.on_decision("XAUUSD", Timeframe.H1, d) == []
    await enable(env, symbols=("XAUUSD",), timeframe=Timeframe.H4)
    assert await env.auto.on_decision("XAUUSD", Timeframe.H1, d) == []
    assert await env.auto.watched_symbols() == {"XAUUSD"}


async def test_tier_gate(env: Env) -> None:
    async with env.unit() as uow:
        for user in (FREE, BASIC):
            with pytest.raises(FeatureLocked) as locked:
                await env.auto.set_enabled(uow, user, env.tier(user), True)
            assert locked.value.params["tier"] == "pro"
            with pytest.raises(FeatureLocked):
                await env.auto.set_threshold(uow, user, env.tier(user), "70")
            assert not (await uow.trading.profile(user)).auto_trading
        panel = await env.auto.panel(uow, FREE, env.tier(FREE))
        assert not panel.allowed and panel.needed_tier == "pro"
    # a user whose plan lapsed keeps the switch but gets nothing
    await enable(env)
    async with env.sessionmaker() as s:
        (await s.get(UserRow, PRO)).tier = "free"  # type: ignore[union-attr]
        await s.commit()
    assert [r.outcome for r in await env.auto.on_decision("XAUUSD", Timeframe.H1, await decision(env))] == [
        Outcome.LOCKED]  # fmt: skip
    assert await orders(env) == []
    async with env.unit() as uow:  # switching off is always allowed
        panel = await env.auto.set_enabled(uow, PRO, env.tier(FREE), False)
        assert not panel.profile.auto_trading


async def _link_live(env: Env) -> int:
    login = env.hub.terminal.open_real_account("Live-Pass-1", 20_000.0)
    async with env.unit() as uow:
        await env.trading.link_live(uow, PRO, env.tier(PRO), str(login), "HybridTrader-Sim", "Live-Pass-1")
        await env.trading.switch(uow, PRO, env.tier(PRO), AccountKind.LIVE)
    return login


async def test_live_auto_trading_needs_the_second_confirmation(env: Env) -> None:
    async with env.unit() as uow:
        with pytest.raises(NoLiveAccount):
            await env.auto.confirm_live(uow, PRO, env.tier(PRO))
    login = await _link_live(env)
    await enable(env)
    # the live account is the one in use, but auto-trading was not confirmed for it: demo
    async with env.unit() as uow:
        assert (await env.auto.panel(uow, PRO, env.tier(PRO))).account is AccountKind.DEMO
    await env.auto.on_decision("XAUUSD", Timeframe.H1, await decision(env))
    [order] = await orders(env)
    assert order.account_kind == "demo" and order.status == "done"
    assert await positions(env, kind=AccountKind.LIVE) == []
    # confirmed: the next bar's signal goes to the live account
    async with env.unit() as uow:
        panel = await env.auto.confirm_live(uow, PRO, env.tier(PRO))
        assert panel.account is AccountKind.LIVE and panel.settings.live_confirmed
    env.clock.advance(3600)
    await env.auto.on_decision("XAUUSD", Timeframe.H1, await decision(env))
    live_orders = [o for o in await orders(env) if o.account_kind == "live"]
    assert len(live_orders) == 1 and live_orders[0].login == login and live_orders[0].status == "done"
    assert len(await positions(env, kind=AccountKind.LIVE)) == 1
    [confirmed] = await audit(env, "autotrade.live_confirmed")
    assert confirmed.details["login"] == login
    # withdrawn: back to demo
    async with env.unit() as uow:
        assert (await env.auto.use_demo(uow, PRO, env.tier(PRO))).account is AccountKind.DEMO


async def test_risk_limits_cap_the_size_and_block_what_they_must(env: Env) -> None:
    await enable(env, risk_pct=2.0)
    await set_profile(env, PRO, limits=replace((await _profile(env)).limits, max_volume=0.05,
                                               risk_per_trade_pct=1.0))  # fmt: skip
    results = await env.auto.on_decision("XAUUSD", Timeframe.H1, await decision(env))
    assert [r.outcome for r in results] == [Outcome.PLACED]
    [pos] = await positions(env)
    assert pos.volume == 0.05  # capped by max_volume; the 1% limit alone would allow 0.08
    [order] = await orders(env)
    assert order.params["risk_pct"] == 1.0 and order.params["requested_risk_pct"] == 2.0
    # a /risk limit that refuses the order: reported with the rule
    await set_profile(env, PRO, limits=replace((await _profile(env)).limits, max_positions=1))
    env.clock.advance(3600)
    await enable(env, symbols=("XAUUSD", "EURUSD"))
    eur = await decision(env, "EURUSD")
    if eur.direction is Direction.FLAT:  # EURUSD has no consensus at this bar: use the gold signal's shape
        eur = replace(await decision(env), direction=Direction.BUY)
    results = await env.auto.on_decision("EURUSD", Timeframe.H1, eur)
    assert [r.outcome for r in results] == [Outcome.BLOCKED]
    report = results[0].report
    assert report is not None and report.breach is not None and report.breach.rule == "max_positions"
    assert report in env.reports
    [blocked] = await audit(env, "trade.blocked")
    assert blocked.surface == "worker"


async def _profile(env: Env):  # type: ignore[no-untyped-def]
    async with env.unit() as uow:
        return await uow.trading.profile(PRO)


async def test_opposite_signal_is_reported_never_reversed(env: Env) -> None:
    await enable(env)
    async with env.unit() as uow:
        preview = await env.trading.preview_open(uow, PRO, env.tier(PRO), Side.BUY, "XAUUSD", 0.01, None, None)
        await env.trading.execute(uow, PRO, env.tier(PRO), preview.order.id)
    [held] = await positions(env)
    results = await env.auto.on_decision("XAUUSD", Timeframe.H1, await decision(env))
    assert [r.outcome for r in results] == [Outcome.OPPOSITE]
    report = results[0].report
    assert report is not None and report.ticket == held.ticket and report.held is Side.BUY
    assert report.key == f"autotrade:{PRO}:opposite:{held.ticket}:sell"
    assert len(await orders(env)) == 1 and await positions(env) == [held]


async def test_profit_currency_is_converted_for_sizing(env: Env) -> None:
    """USDJPY's loss is in yen: without conversion the budget would never buy the minimum volume."""
    await enable(env, symbols=("USDJPY",))
    jpy = await decision(env, "USDJPY")
    if jpy.direction is Direction.FLAT:
        jpy = replace(await decision(env), direction=Direction.SELL, time=jpy.time)
    results = await env.auto.on_decision("USDJPY", Timeframe.H1, jpy)
    assert [r.outcome for r in results] == [Outcome.PLACED]
    report = results[0].report
    assert report is not None and report.volume is not None and report.volume >= 0.01
    assert report.risk_pct is not None and 0.5 < report.risk_pct <= 1.0


async def test_settings_validation_and_defaults(env: Env) -> None:
    async with env.unit() as uow:
        tier = env.tier(PRO)
        assert (await env.auto.settings(uow, PRO)).symbols == ("EURUSD",)
        await uow.agents.subscribe(PRO, "GBPUSD", START)
        await uow.commit()
        assert (await env.auto.settings(uow, PRO)).symbols == ("GBPUSD",)  # the signal watchlist first
        with pytest.raises(AutoSettingOutOfRange):
            await env.auto.set_threshold(uow, PRO, tier, "99")
        assert (await env.auto.set_threshold(uow, PRO, tier, "0.7")).settings.threshold == 0.7
        with pytest.raises(AutoSettingOutOfRange):
            await env.auto.set_risk(uow, PRO, tier, "3")  # over the 2% /risk limit
        assert (await env.auto.set_risk(uow, PRO, tier, "1,5")).settings.risk_pct == 1.5
        with pytest.raises(SymbolNotFound):
            await env.auto.toggle_symbol(uow, PRO, tier, "NOPE<b>")
        panel = await env.auto.toggle_symbol(uow, PRO, tier, "xauusd")
        assert panel.settings.symbols == ("GBPUSD", "XAUUSD")
        panel = await env.auto.toggle_symbol(uow, PRO, tier, "GBPUSD")
        assert panel.settings.symbols == ("XAUUSD",)
        for name in ("EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCHF", "USDCAD", "NZDUSD"):
            await env.auto.toggle_symbol(uow, PRO, tier, name)
        with pytest.raises(TooManySymbols):
            await env.auto.toggle_symbol(uow, PRO, tier, "BTCUSD")
        assert len((await env.auto.settings(uow, PRO)).symbols) == 8
        assert (await env.auto.set_timeframe(uow, PRO, tier, "h4")).settings.timeframe is Timeframe.H4
        with pytest.raises(InvalidInput):
            await env.auto.set_timeframe(uow, PRO, tier, "M15")  # the runner makes no M15 decisions here


async def test_stance_of_a_position() -> None:
    votes_buy = ConsensusDecision(Direction.BUY, 0.7, 0.9, 1.0, 5, (), None, False, "consensus.agree")
    assert stance(Side.BUY, votes_buy) is Stance.SUPPORTS
    assert stance(Side.SELL, votes_buy) is Stance.AGAINST
    assert stance(Side.SELL, replace(votes_buy, vetoed=True)) is Stance.NONE
    assert stance(Side.BUY, None) is Stance.NONE


async def test_switched_on_without_stored_settings_uses_the_defaults(env: Env) -> None:
    """A profile switched on before any setting was chosen trades the default list (the signal watchlist)."""
    await set_profile(env, PRO, auto_trading=True)
    assert await env.auto.watched_symbols() == {"EURUSD"}
    async with env.unit() as uow:
        await uow.agents.subscribe(PRO, "XAUUSD", START)
        await uow.commit()
    assert await env.auto.watched_symbols() == {"XAUUSD"}
    results = await env.auto.on_decision("XAUUSD", Timeframe.H1, await decision(env))
    assert [r.outcome for r in results] == [Outcome.PLACED]
