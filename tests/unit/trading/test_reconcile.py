"""Reconciliation on both databases: an order left SENDING (its sender died after or before the fill) is found
in the terminal by its id and settled exactly once, audited, and the user told in their language through the
outbox; new orders on the account are refused until then; a live order with no trace is settled REJECTED only
after UNKNOWN_AFTER."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from bot.i18n import create_i18n
from bot.notify import OutboxNotifier
from bot.views.trading import SettlementNotice
from domain.db.models import AuditRow, NotificationRow, OrderRow, UserRow
from domain.db.trading import SqlDemoStore
from domain.db.uow import UnitOfWork
from domain.market.gateway import OrderRequest
from domain.market.models import Side
from domain.trading.crypto import SecretBox
from domain.trading.locks import LocalLocks, PgAdvisoryLocks
from domain.trading.market import MarketHub
from domain.trading.models import AccountKind, OrderStatus, OrderUnsettled, order_magic
from domain.trading.reconcile import Reconciler
from domain.trading.service import TradingService
from tests.stores import Market, market

START = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
USER, OTHER = 1, 2
SECRET = b"unit-test-secret"


@dataclass
class Env:
    m: Market
    trading: TradingService
    reconciler: Reconciler

    def unit(self) -> UnitOfWork:
        return UnitOfWork(self.m.sessionmaker)


def _reconciler(m: Market, trading: TradingService, **kw: object) -> Reconciler:
    notice = SettlementNotice(create_i18n(), lambda: OutboxNotifier(m.sessionmaker))
    return Reconciler(lambda: UnitOfWork(m.sessionmaker), trading, announce=notice, **kw)  # type: ignore[arg-type]


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    async with market(db_url, {USER: "basic", OTHER: "free"}, START) as m:
        async with m.sessionmaker() as s:
            await s.execute(update(UserRow).where(UserRow.id == USER).values(language="es"))
            await s.commit()
        locks = PgAdvisoryLocks(m.engine) if m.engine.dialect.name == "postgresql" else LocalLocks()
        trading = TradingService(m.hub, m.tiers, SecretBox(SECRET), locks=locks)
        yield Env(m, trading, _reconciler(m, trading))


async def _preview(env: Env, user: int = USER, symbol: str = "EURUSD", volume: float = 0.1) -> str:
    async with env.unit() as uow:
        p = await env.trading.preview_open(uow, user, env.m.tiers.get("basic"), Side.BUY, symbol, volume, None, None)
        return p.order.id


async def _crash_mid_send(env: Env, order_id: str, *, filled: bool) -> None:
    """What a sender killed between the claim and the answer leaves: the order SENDING and, when the request
    reached the terminal, its fill (carrying the order's id and magic, as TradingService sends it)."""
    async with env.unit() as uow:
        assert await uow.trading.transition(order_id, USER, OrderStatus.PENDING, OrderStatus.SENDING, datetime.now(UTC))
        order = await uow.trading.order(order_id)
        await uow.commit()
    assert order is not None
    if filled:
        gw = env.trading.hub.demo_gateway(order.login)
        request = OrderRequest.market("EURUSD", Side.BUY, 0.1, client_id=order_id, magic=order_magic(order_id))
        assert (await gw.order_send(request)).ok


async def _rows(env: Env, model, **where):  # type: ignore[no-untyped-def]
    async with env.m.sessionmaker() as s:
        stmt = select(model)
        for k, v in where.items():
            stmt = stmt.where(getattr(model, k) == v)
        return list((await s.execute(stmt)).scalars())


async def test_an_order_filled_before_the_crash_is_settled_done_with_the_real_fill_once(env: Env) -> None:
    order_id = await _preview(env)
    await _crash_mid_send(env, order_id, filled=True)
    async with env.unit() as uow:
        _, gw = await env.trading.active(uow, USER, env.m.tiers.get("basic"))
    [position] = await gw.positions()
    # a retry meanwhile is refused, localized by the bot (tests/bot/market/test_reconcile_chat.py)
    again = await _preview(env, symbol="GBPUSD")
    async with env.unit() as uow:
        with pytest.raises(OrderUnsettled):
            await env.trading.execute(uow, USER, env.m.tiers.get("basic"), again)
    settled = await env.reconciler.run_once()
    assert [s.order.id for s in settled] == [order_id]
    assert await env.reconciler.run_once() == []  # settled once: the next pass has nothing to do
    [row] = await _rows(env, OrderRow, id=order_id)
    assert row.status == "done" and row.retcode == 10009
    assert row.result["ticket"] == position.ticket and row.result["volume"] == 0.1
    assert row.result["price"] == position.price_open
    [audit] = await _rows(env, AuditRow, action="trade.reconciled")
    assert audit.details["order"] == order_id and audit.details["status"] == "done" and audit.surface == "system"
    [notice] = await _rows(env, NotificationRow, user_id=USER)
    assert notice.key == f"order:{order_id}:settled"
    assert f"La orden {order_id[:8]} se ejecutó" in notice.text and f"#{position.ticket}" in notice.text
    # the account takes orders again; the retry previewed meanwhile goes through
    async with env.unit() as uow:
        assert (await env.trading.execute(uow, USER, env.m.tiers.get("basic"), again)).ok


async def test_an_order_the_crash_stopped_before_the_terminal_is_settled_rejected(env: Env) -> None:
    order_id = await _preview(env)
    await _crash_mid_send(env, order_id, filled=False)
    async with env.unit() as uow:
        with pytest.raises(OrderUnsettled):  # a new order is refused in preview already once it is known unknown
            await uow.trading.mark_unknown(order_id, "MKT-TIMEOUT")
            await uow.commit()
            await env.trading.preview_open(uow, USER, env.m.tiers.get("basic"), Side.BUY, "EURUSD", 0.1, None, None)
    [settled] = await env.reconciler.run_once()  # a demo account's terminal answers for certain: at once
    assert settled.order.status is OrderStatus.REJECTED and settled.reason == "no_trace"
    [row] = await _rows(env, OrderRow, id=order_id)
    assert row.status == "rejected" and row.result["reason"] == "no_trace"
    [notice] = await _rows(env, NotificationRow, user_id=USER)
    assert f"La orden {order_id[:8]} no se ejecutó" in notice.text
    async with env.unit() as uow:
        _, gw = await env.trading.active(uow, USER, env.m.tiers.get("basic"))
    assert await gw.positions() == []


@pytest.mark.integration
async def test_two_reconcilers_racing_on_postgresql_settle_once(pg_url: str) -> None:
    async with market(pg_url, {USER: "basic"}, START) as m:
        hubs, services = [m.hub], []
        second = MarketHub(clock=m.clock)
        await second.start(SqlDemoStore(m.sessionmaker))
        hubs.append(second)
        for hub in hubs:
            services.append(TradingService(hub, m.tiers, SecretBox(SECRET), locks=PgAdvisoryLocks(m.engine)))
        env = Env(m, services[0], _reconciler(m, services[0]))
        ids = [await _preview(env) for _ in range(3)]
        for order_id in ids:
            await _crash_mid_send(env, order_id, filled=True)
        try:
            rounds = await asyncio.gather(*(_reconciler(m, s).run_once() for s in services for _ in range(2)))
        finally:
            await second.close()
        assert sorted(s.order.id for batch in rounds for s in batch) == sorted(ids)
        assert len(await _rows(env, AuditRow, action="trade.reconciled")) == 3
        assert sorted(n.key for n in await _rows(env, NotificationRow)) == sorted(f"order:{i}:settled" for i in ids)
        assert {r.status for r in await _rows(env, OrderRow)} == {"done"}


async def test_a_live_order_without_trace_waits_then_is_rejected_after_the_window(env: Env) -> None:
    login = env.m.hub.terminal.open_real_account("Live-Pass-1", 10_000.0)
    async with env.unit() as uow:
        await env.trading.link_live(uow, USER, env.m.tiers.get("basic"), str(login), "HybridTrader-Sim", "Live-Pass-1")
        await env.trading.switch(uow, USER, env.m.tiers.get("basic"), AccountKind.LIVE)
    order_id = await _preview(env)
    async with env.unit() as uow:
        await uow.trading.transition(order_id, USER, OrderStatus.PENDING, OrderStatus.SENDING, datetime.now(UTC))
        await uow.commit()
    assert await env.reconciler.run_once() == []  # a live terminal's history may lag: not yet
    [row] = await _rows(env, OrderRow, id=order_id)
    assert row.status == "sending"
    async with env.unit() as uow:  # its credentials are needed to look it up: the account stays linked meanwhile
        await uow.trading.mark_unknown(order_id, "MKT-TIMEOUT")
        await uow.commit()
        with pytest.raises(OrderUnsettled):
            await env.trading.unlink_live(uow, USER)
    later = _reconciler(env.m, env.trading, clock=lambda: datetime.now(UTC) + timedelta(minutes=11))
    [settled] = await later.run_once()
    assert settled.order.status is OrderStatus.REJECTED and settled.reason == "no_trace"
