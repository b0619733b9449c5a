"""TradingService on both databases: one order per confirmation under concurrent taps, risk limits,
the kill switch, and broker passwords never stored in plaintext."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.db.models import AuditRow, OrderRow, TradingAccountRow
from domain.db.trading import SqlDemoStore
from domain.db.uow import UnitOfWork
from domain.errors import FeatureLocked
from domain.market.clock import ManualClock
from domain.market.models import Side
from domain.tiers import TierCatalog
from domain.trading.crypto import SecretBox
from domain.trading.market import MarketHub
from domain.trading.models import LinkFailed, OrderRefused, OrderStatus
from domain.trading.service import TradingService
from tests.stores import market

START = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
SECRET = b"unit-test-secret"


@dataclass
class Env:
    sessionmaker: async_sessionmaker[AsyncSession]
    hub: MarketHub
    service: TradingService
    tiers: TierCatalog
    clock: ManualClock


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    async with market(db_url, {1: "free", 2: "free"}, START) as m:
        yield Env(m.sessionmaker, m.hub, TradingService(m.hub, m.tiers, SecretBox(SECRET)), m.tiers, m.clock)


async def _preview(env: Env, user: int = 1, volume: float = 0.1, sl: float | None = None) -> str:
    async with UnitOfWork(env.sessionmaker) as uow:
        p = await env.service.preview_open(uow, user, env.tiers.get("free"), Side.BUY, "EURUSD", volume, sl, None)
        return p.order.id


async def _open_positions(env: Env, user: int = 1) -> int:
    async with UnitOfWork(env.sessionmaker) as uow:
        _, _, positions, _ = await env.service.positions(uow, user, env.tiers.get("free"))
        return len(positions)


async def _confirm(env: Env, order_id: str, user: int = 1):  # type: ignore[no-untyped-def]
    async with UnitOfWork(env.sessionmaker) as uow:
        return await env.service.execute(uow, user, env.tiers.get("free"), order_id)


async def test_concurrent_confirmations_send_one_order(env: Env) -> None:
    order_id = await _preview(env)
    results = await asyncio.gather(*(_confirm(env, order_id) for _ in range(8)))
    assert sum(1 for r in results if not r.repeated) == 1
    assert all(r.repeated for r in results if not r.ok)
    assert await _open_positions(env) == 1
    async with env.sessionmaker() as s:
        row = await s.get(OrderRow, order_id)
        assert row is not None and row.status == OrderStatus.DONE.value and row.retcode == 10009
        executed = (await s.execute(select(AuditRow).where(AuditRow.action == "trade.executed"))).scalars().all()
        assert len(executed) == 1 and executed[0].details["order"] == order_id


async def test_another_users_confirmation_is_refused(env: Env) -> None:
    order_id = await _preview(env, user=1)
    with pytest.raises(OrderRefused):
        await _confirm(env, order_id, user=2)
    with pytest.raises(OrderRefused):
        await _confirm(env, "0" * 16, user=1)
    assert await _open_positions(env) == 0


async def test_daily_loss_limit_blocks(env: Env) -> None:
    async with UnitOfWork(env.sessionmaker) as uow:
        await env.service.set_limit(uow, 1, "max_daily_loss_pct", "0.1")
    await _confirm(env, await _preview(env, volume=5.0))  # big position
    for _ in range(200):  # let the price run until the loss exceeds 0.1 % of equity or gains
        env.clock.advance(60)
        async with UnitOfWork(env.sessionmaker) as uow:
            _, gw = await env.service.active(uow, 1, env.tiers.get("free"))
            pnl, _, _ = await env.service.day_pnl(gw, datetime.fromtimestamp(env.clock() / 1000, UTC))
        if pnl.loss_pct >= 0.1:
            break
    else:
        raise AssertionError("the seeded path never lost 0.1 % in this window")
    result = await _confirm(env, await _preview(env, volume=0.01))
    assert result.breach is not None and result.breach.rule == "daily_loss"
    async with env.sessionmaker() as s:
        blocked = (await s.execute(select(AuditRow).where(AuditRow.action == "trade.blocked"))).scalars().all()
        assert blocked and blocked[-1].details["rule"] == "daily_loss"


async def test_kill_switch_and_risk_per_trade(env: Env) -> None:
    order_id = await _preview(env, volume=1.0, sl=1.10)  # ~7 % of equity at risk
    result = await _confirm(env, order_id)
    assert result.breach is not None and result.breach.rule == "risk_per_trade" and result.breach.value > 2
    async with UnitOfWork(env.sessionmaker) as uow:
        await env.service.set_flag(uow, 1, "kill_switch", True)
    result = await _confirm(env, await _preview(env))
    assert result.breach is not None and result.breach.rule == "kill_switch"
    assert await _open_positions(env) == 0


async def test_live_password_is_encrypted_at_rest(env: Env) -> None:
    login = env.hub.terminal.open_real_account("Plain-Text-42", 1000.0)
    async with UnitOfWork(env.sessionmaker) as uow:
        with pytest.raises(FeatureLocked):
            await env.service.link_live(uow, 1, env.tiers.get("free"), str(login), "HybridTrader-Sim", "Plain-Text-42")
        with pytest.raises(LinkFailed):
            await env.service.link_live(uow, 1, env.tiers.get("basic"), str(login), "HybridTrader-Sim", "nope")
        await env.service.link_live(uow, 1, env.tiers.get("basic"), str(login), "HybridTrader-Sim", "Plain-Text-42")
    async with env.sessionmaker() as s:
        row = (await s.execute(select(TradingAccountRow).where(TradingAccountRow.kind == "live"))).scalar_one()
        assert row.password_enc and "Plain-Text-42" not in row.password_enc
        assert SecretBox(SECRET).open(row.password_enc) == "Plain-Text-42"
        with pytest.raises(ValueError):
            SecretBox(b"another-key").open(row.password_enc)
        audit = (await s.execute(select(AuditRow))).scalars().all()
        assert audit and all("Plain-Text-42" not in str(a.details) for a in audit)


async def test_demo_accounts_survive_a_restart(env: Env) -> None:
    await _confirm(env, await _preview(env, volume=0.3))
    hub2 = MarketHub(clock=env.clock)
    await hub2.start(SqlDemoStore(env.sessionmaker))
    service2 = TradingService(hub2, env.tiers, SecretBox(SECRET))
    async with UnitOfWork(env.sessionmaker) as uow:
        account, info, positions, _ = await service2.positions(uow, 1, env.tiers.get("free"))
    assert [p.volume for p in positions] == [0.3]
    old_ticket = positions[0].ticket
    env2 = Env(env.sessionmaker, hub2, service2, env.tiers, env.clock)
    await _confirm(env2, await _preview(env2, volume=0.1))
    async with UnitOfWork(env.sessionmaker) as uow:
        _, _, positions, _ = await service2.positions(uow, 1, env.tiers.get("free"))
    assert len({p.ticket for p in positions}) == 2 and old_ticket in {p.ticket for p in positions}


async def test_gateway_failures_never_leave_an_order_half_sent(env: Env) -> None:
    from domain.trading.models import MarketUnavailable, OutcomeUnknown

    down = await _preview(env)
    env.hub.terminal.inject("disconnect", count=None)
    with pytest.raises(MarketUnavailable):
        await _confirm(env, down)
    env.hub.terminal.clear_faults()
    slow = await _preview(env)
    env.hub.terminal.inject("timeout", count=None)
    with pytest.raises((OutcomeUnknown, MarketUnavailable)):
        await _confirm(env, slow)
    env.hub.terminal.clear_faults()
    async with env.sessionmaker() as s:
        statuses = {row.id: row.status for row in (await s.execute(select(OrderRow))).scalars()}
    assert statuses == {down: "failed", slow: "failed"}
    again = await _confirm(env, down)  # a failed order is final: a later tap does not send it
    assert again.repeated and not again.ok
    assert await _open_positions(env) == 0
