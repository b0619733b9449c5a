"""Demo accounts shared by several processes (two hubs on one database stand for two replicas):
what one trades the other sees, SL/TP hits are stored by whoever notices them first, tickets never
collide, concurrent orders on one account are never lost, and a failed store loses no money."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain.db.engine import create_engine, create_sessionmaker
from domain.db.models import SimAccountRow, SimDealRow
from domain.db.trading import SqlDemoStore
from domain.market.clock import ManualClock
from domain.market.gateway import OrderRequest
from domain.market.models import Side
from domain.trading.market import MarketHub
from tests.unit.market.conftest import WEDNESDAY_NOON

PT = 0.00001


@dataclass
class Pair:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    clock: ManualClock
    a: MarketHub
    b: MarketHub


@pytest.fixture
async def pair(db_url: str) -> AsyncIterator[Pair]:
    async for p in _pair(db_url):
        yield p


@pytest.fixture
async def pg_pair(pg_url: str) -> AsyncIterator[Pair]:
    async for p in _pair(pg_url):
        yield p


async def _pair(url: str) -> AsyncIterator[Pair]:
    engine = create_engine(url)
    sm = create_sessionmaker(engine)
    clock = ManualClock(WEDNESDAY_NOON)
    hubs = [MarketHub(clock=clock) for _ in range(2)]
    for hub in hubs:
        await hub.start(SqlDemoStore(sm))
    yield Pair(engine, sm, clock, *hubs)
    for hub in hubs:
        await hub.close()
    await engine.dispose()


async def test_a_trade_on_one_process_is_seen_and_closed_on_the_other(pair: Pair) -> None:
    login = await pair.a.open_demo(10_000.0)
    ga, gb = pair.a.demo_gateway(login), pair.b.demo_gateway(login)
    opened = await ga.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.2))
    assert opened.ok
    [pos] = await gb.positions()
    assert pos.ticket == opened.order and pos.volume == 0.2
    pair.clock.advance(600)
    closed = await gb.order_send(OrderRequest.close("EURUSD", pos.ticket))
    assert closed.ok
    assert await ga.positions() == []
    info_a, info_b = await ga.account(), await gb.account()
    assert info_a.balance == info_b.balance != 10_000.0
    end = WEDNESDAY_NOON + timedelta(hours=1)
    start = WEDNESDAY_NOON - timedelta(hours=1)
    deals_a = await ga.history_deals(start, end)
    assert [d.ticket for d in deals_a] == [d.ticket for d in await gb.history_deals(start, end)]
    assert [d.entry for d in deals_a] == ["in", "out"]
    async with pair.sessionmaker() as s:  # and the deposit
        assert await s.scalar(select(func.count()).select_from(SimDealRow).where(SimDealRow.login == login)) == 3


async def test_logins_and_tickets_never_collide_across_processes(pair: Pair) -> None:
    logins = [await pair.a.open_demo(), await pair.b.open_demo(), await pair.a.open_demo()]
    assert len(set(logins)) == 3
    tickets = []
    for i in range(6):
        hub = (pair.a, pair.b)[i % 2]
        result = await hub.demo_gateway(logins[i % 3]).order_send(OrderRequest.market("EURUSD", Side.SELL, 0.1))
        assert result.ok
        tickets += [result.order, result.deal]
    assert len(set(tickets)) == len(tickets)


async def test_a_stop_loss_hit_is_stored_by_the_first_process_that_looks(pair: Pair) -> None:
    login = await pair.a.open_demo()
    ga, gb = pair.a.demo_gateway(login), pair.b.demo_gateway(login)
    tick = await pair.a.data_gateway().tick("EURUSD")
    sl = round(tick.bid - 15 * PT, 5)
    assert (await ga.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.1, sl=sl))).ok
    pair.clock.advance(4 * 3600)
    assert await gb.positions() == []  # B caught up from the stored instant and closed it at the SL
    end = WEDNESDAY_NOON + timedelta(hours=5)
    [out_b] = [d for d in await gb.history_deals(WEDNESDAY_NOON, end) if d.entry == "out"]
    [out_a] = [d for d in await ga.history_deals(WEDNESDAY_NOON, end) if d.entry == "out"]
    assert out_a == out_b and out_a.comment == f"[sl {sl:.5f}]"
    assert (await ga.account()).balance == (await gb.account()).balance


@pytest.mark.integration
async def test_concurrent_orders_on_one_account_from_two_processes_are_all_kept(pg_pair: Pair) -> None:
    """Row locks make the processes take turns (SQLite is the one-process stack: no such test there)."""
    pair = pg_pair
    login = await pair.a.open_demo(100_000.0)
    ga, gb = pair.a.demo_gateway(login), pair.b.demo_gateway(login)
    results = await asyncio.gather(
        *(gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.1)) for _ in range(8) for gw in (ga, gb))
    )
    assert all(r.ok for r in results)
    assert len(await ga.positions()) == len(await gb.positions()) == 16
    async with pair.sessionmaker() as s:
        row = await s.get(SimAccountRow, login)
        assert row is not None and len(row.state["positions"]) == 16 and row.deals == 17


async def test_a_failed_store_leaves_the_account_as_stored(pair: Pair, monkeypatch: pytest.MonkeyPatch) -> None:
    login = await pair.a.open_demo()
    gw = pair.a.demo_gateway(login)
    from domain.db.trading import LockedAccount

    async def broken(*_: object, **__: object) -> int:
        raise ConnectionError("database went away")

    monkeypatch.setattr(LockedAccount, "save", broken)
    with pytest.raises(ConnectionError):
        await gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.1))
    monkeypatch.undo()
    assert await gw.positions() == []  # the fill that could not be stored did not happen
    assert (await gw.account()).balance == 10_000.0


async def test_a_process_keeps_copies_of_its_recent_accounts_only(pair: Pair) -> None:
    from domain.trading.demo import DemoAccounts

    assert isinstance(pair.a.demo, DemoAccounts)
    pair.a.demo._keep = 2
    logins = [await pair.b.open_demo(10_000.0 + i) for i in range(3)]
    for login in logins:
        assert (await pair.a.demo_gateway(login).order_send(OrderRequest.market("EURUSD", Side.BUY, 0.1))).ok
    held = [login for login in logins if pair.a.terminal.has_account(login)]
    assert held == logins[1:]  # the least recently used copy was dropped
    first = pair.a.demo_gateway(logins[0])  # read again from the database when next used
    [position] = await first.positions()
    assert position.volume == 0.1 and (await first.account()).balance == 10_000.0
    assert [login for login in logins if pair.a.terminal.has_account(login)] == [logins[0], logins[2]]
