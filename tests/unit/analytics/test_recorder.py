"""The hourly equity recorder on both databases: one snapshot per trader and hour, idempotent, failures skipped."""

from __future__ import annotations

from sqlalchemy import select

from domain.db.models import EquitySnapshotRow, TradingProfileRow
from domain.db.uow import UnitOfWork
from domain.market.gateway import OrderRequest
from domain.market.models import Side
from tests.unit.analytics.conftest import START, T0, Env
from tests.unit.analytics.conftest import login as _login
from workers.equity_recorder import EquityRecorder


async def _rows(env: Env) -> list[tuple[int, int, float, float]]:
    async with env.sessionmaker() as s:
        rows = await s.execute(select(EquitySnapshotRow).order_by(EquitySnapshotRow.user_id, EquitySnapshotRow.ts))
        return [(r.user_id, r.ts, r.balance, r.equity) for r in rows.scalars()]


async def test_one_snapshot_per_trader_and_hour(env: Env) -> None:
    recorder = EquityRecorder(env.sessionmaker, env.service, env.tiers)
    assert await recorder.record_all() == 0  # nobody trades yet: nothing to record
    await _login(env, 1)
    gw = env.hub.demo_gateway(await _login(env, 2))
    await gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 1.0))
    env.clock.advance(600)
    equity = round((await gw.account()).equity, 2)
    assert await recorder.record_all() == 2
    assert await recorder.record_all() == 0  # the same hour again (or another worker): kept once
    hour = T0 // 3600 * 3600
    assert await _rows(env) == [(1, hour, 10_000.0, 10_000.0), (2, hour, 10_000.0, equity)]
    env.clock.advance(3600)
    assert await recorder.record_all() == 2
    assert [ts for _, ts, _, _ in await _rows(env)] == [hour, hour + 3600, hour, hour + 3600]


async def test_a_failing_account_does_not_stop_the_round(env: Env) -> None:
    await _login(env, 1)
    await _login(env, 2)
    async with UnitOfWork(env.sessionmaker) as uow:  # user 1 switched to a live account that is not linked
        uow.session.add(TradingProfileRow(user_id=1, active="live", auto_trading=False, kill_switch=False,
                                          max_volume=10.0, max_positions=20, max_daily_loss_pct=5.0,
                                          risk_per_trade_pct=2.0, updated_at=START))  # fmt: skip
        await uow.commit()
    recorder = EquityRecorder(env.sessionmaker, env.service, env.tiers)
    assert await recorder.record_all() == 1
    assert [uid for uid, *_ in await _rows(env)] == [2]
