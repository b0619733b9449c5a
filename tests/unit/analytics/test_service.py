"""AnalyticsService on both databases: the report from real sim deals, recorded equity history, the platform median."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.analytics.metrics import Period
from domain.analytics.service import AnalyticsService
from domain.db.analytics import EquitySnapshot
from domain.db.uow import UnitOfWork
from domain.market.gateway import OrderRequest
from domain.market.models import Side
from tests.unit.analytics.conftest import START, T0, Env
from tests.unit.analytics.conftest import login as _login


async def _report(env: Env, period: Period, user: int = 1):  # type: ignore[no-untyped-def]
    async with UnitOfWork(env.sessionmaker) as uow:
        return await env.service.report(uow, user, env.tiers.get("basic"), period)


async def test_report_of_an_untouched_account_is_empty(env: Env) -> None:
    await _login(env)
    report = await _report(env, Period.MONTH)
    assert report.empty and report.metrics.trades == 0 and report.metrics.net == 0.0
    assert report.equity_now == 10_000.0 and report.equity[-1] == (T0, 10_000.0)
    assert report.platform_median_pct is None and report.platform_users == 0


async def test_report_from_sim_deals(env: Env) -> None:
    gw = env.hub.demo_gateway(await _login(env))
    await gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 1.0))
    env.clock.advance(3600)
    position = (await gw.positions())[0]
    await gw.order_send(OrderRequest.close("EURUSD", position.ticket))
    env.clock.advance(60)
    await gw.order_send(OrderRequest.market("XAUUSD", Side.SELL, 0.1))
    env.clock.advance(60)
    deals = await gw.history_deals(START, datetime.fromtimestamp(T0 + 10_000, UTC))
    closed = [d for d in deals if d.entry == "out"]
    account = await gw.account()
    report = await _report(env, Period.TODAY)
    m = report.metrics
    assert m.trades == 1 and m.net == round(closed[0].profit, 2)
    assert (m.wins, m.losses) == ((1, 0) if closed[0].profit > 0 else (0, 1))
    assert [s.symbol for s in report.by_symbol] == ["EURUSD"]
    assert report.open_positions == 1 and report.equity_now == round(account.equity, 2)
    # the balance before the first deal, after the close, then today's equity at the end
    assert report.equity[0] == (report.start, 10_000.0)
    assert (closed[0].time, round(10_000.0 + closed[0].profit, 2)) in report.equity
    assert report.equity[-1] == (report.end, round(account.equity, 2))
    assert report.drawdown[0] == (report.start, 0.0) and all(v <= 0 for _, v in report.drawdown)
    assert report.buy_and_hold_pct is not None  # EURUSD from the day's first bar to now
    assert not report.empty


async def test_recorded_snapshots_win_over_the_reconstruction(env: Env) -> None:
    login = await _login(env)
    async with UnitOfWork(env.sessionmaker) as uow:
        assert await env.service.snapshot(uow, 1, env.tiers.get("basic")) is True
    async with UnitOfWork(env.sessionmaker) as uow:  # the same second again: kept once
        assert await env.service.snapshot(uow, 1, env.tiers.get("basic")) is False
        await uow.equity.add([EquitySnapshot(1, "demo", login, T0 - 7200, 9_000.0, 9_500.0),
                              EquitySnapshot(1, "demo", login, T0 - 3600, 9_900.0, 9_800.0)])  # fmt: skip
        await uow.commit()
    env.clock.advance(120)
    report = await _report(env, Period.TODAY)
    midnight = T0 - 10 * 3600  # the day starts flat at the first known equity
    assert report.equity == [
        (midnight, 9_500.0), (T0 - 7200, 9_500.0), (T0 - 3600, 9_800.0), (T0, 10_000.0), (T0 + 120, 10_000.0)
    ]  # fmt: skip
    assert report.metrics.max_drawdown == 0.0 and report.metrics.start_equity == 9_500.0
    week = await _report(env, Period.ALL)
    assert week.equity[0] == (T0 - 7200, 9_500.0)


async def test_platform_median_only_with_enough_users_of_the_tier(env: Env) -> None:
    async def seed(users: range, ratio: dict[int, float]) -> None:
        async with UnitOfWork(env.sessionmaker) as uow:
            for uid in users:
                e0 = 1_000.0
                await uow.equity.add([EquitySnapshot(uid, "demo", 500 + uid, T0 - 3600, e0, e0),
                                      EquitySnapshot(uid, "demo", 500 + uid, T0 - 60, e0, e0 * ratio[uid])])  # fmt: skip
            await uow.commit()

    await _login(env)
    # users 2 and 3 (basic) plus user 7 (pro, another tier): only two basic users → hidden
    await seed(range(2, 4), {2: 1.10, 3: 0.95})
    await seed(range(7, 8), {7: 2.0})
    assert (await _report(env, Period.TODAY)).platform_median_pct is None
    env.service._peers.clear()  # the median is cached for a few minutes; a new period of data arrives
    await seed(range(4, 6), {4: 1.02, 5: 1.0})
    report = await _report(env, Period.TODAY)
    # returns +10, -5, +2, 0 → median (0 + 2) / 2 = 1.0; user 7 (pro, +100%) is not counted
    assert report.platform_median_pct == 1.0 and report.platform_users == 4


async def test_cached_report_follows_new_deals_new_snapshots_and_backfills(env: Env) -> None:
    login = await _login(env)
    gw = env.hub.demo_gateway(login)
    assert (await _report(env, Period.ALL)).metrics.trades == 0  # the histories are cached from here on
    await gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 1.0))
    env.clock.advance(3600)
    await gw.order_send(OrderRequest.close("EURUSD", (await gw.positions())[0].ticket))
    env.clock.advance(60)
    assert (await _report(env, Period.ALL)).metrics.trades == 1  # deals newer than the cached ones count
    async with UnitOfWork(env.sessionmaker) as uow:
        await uow.equity.add([EquitySnapshot(1, "demo", login, T0 + 3000, 9_990.0, 9_991.0)])
        await uow.commit()
    assert (T0 + 3000, 9_991.0) in (await _report(env, Period.ALL)).equity  # a newer snapshot is appended
    async with UnitOfWork(env.sessionmaker) as uow:  # a snapshot older than every cached one (a backfill)
        await uow.equity.add([EquitySnapshot(1, "demo", login, T0 - 5000, 9_000.0, 9_100.0)])
        await uow.commit()
    cached = await _report(env, Period.ALL)
    assert cached.equity[0] == (T0 - 5000, 9_100.0)
    cold = AnalyticsService(env.trading, env.hub, min_peers=3)  # nothing cached: the very same report
    async with UnitOfWork(env.sessionmaker) as uow:
        fresh = await cold.report(uow, 1, env.tiers.get("basic"), Period.ALL)
    assert fresh.metrics == cached.metrics and fresh.equity == cached.equity and fresh.drawdown == cached.drawdown
    assert fresh.by_symbol == cached.by_symbol and fresh.end == cached.end
