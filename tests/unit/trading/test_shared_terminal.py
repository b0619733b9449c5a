"""Regression: two users' live accounts on one MT5 terminal (the MetaTrader5 module holds ONE logged-in
account per process). Before the terminal pool, Bob linking his account logged the shared terminal in to
it, and Alice's next order landed in Bob's real account."""

from __future__ import annotations

import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.settings import Settings
from domain.db.engine import create_engine, create_sessionmaker
from domain.db.repositories import load_tiers
from domain.db.uow import UnitOfWork
from domain.errors import DomainError
from domain.market.clock import ManualClock
from domain.market.models import Side
from domain.market.sim import SimTerminal
from domain.market.sim_module import SimMT5
from domain.tiers import TierCatalog
from domain.trading.models import AccountKind
from domain.trading.service import TradingService
from tests.stores import seed_users

START = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday: FX markets open
ALICE, BOB = 11, 12


def _broker(clock: ManualClock) -> SimTerminal:
    """A broker's trade server: accounts outside the platform's demo logins, on their own server name."""
    broker = SimTerminal(3, clock=clock)
    broker.server = "Broker-Live"
    for login, password in ((81_000_001, "Alice-Pass-1"), (81_000_002, "Bob-Pass-2")):
        broker.open_demo_account(20_000.0, password=password, login=login, name="Live account")
        broker._accounts[login].real = True  # a REAL trade-mode account
    return broker


async def _trade(trading: TradingService, uow_of: object, user: int, tier: object) -> None:
    async with UnitOfWork(uow_of) as uow:  # type: ignore[arg-type]
        preview = await trading.preview_open(uow, user, tier, Side.BUY, "EURUSD", 0.1, None, None)  # type: ignore[arg-type]
    async with UnitOfWork(uow_of) as uow:  # type: ignore[arg-type]
        await trading.execute(uow, user, tier, preview.order.id)  # type: ignore[arg-type]


async def test_two_users_on_one_terminal_never_trade_each_others_account(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: with MT5_BACKEND=native (one terminal), Bob linking his account used to log the
    terminal in to it, and Alice's next order landed in Bob's real account."""
    from workers.trading_runtime import TradingRuntime

    clock = ManualClock(START)
    broker = _broker(clock)
    monkeypatch.setitem(sys.modules, "MetaTrader5", SimMT5(broker))  # what `import MetaTrader5` gives
    engine = create_engine(db_url)
    sm = create_sessionmaker(engine)
    await seed_users(sm, {ALICE: "basic", BOB: "basic"}, START)
    async with sm() as s:
        tiers = TierCatalog(await load_tiers(s))
    settings = Settings(database_url=db_url, data_dir=tmp_path, secret_key="test-secret", mt5_backend="native")
    runtime = await TradingRuntime.create(settings, sm, tiers)
    runtime.hub.use_clock(clock)
    trading, basic = runtime.trading, tiers.get("basic")
    try:
        async with UnitOfWork(sm) as uow:
            await trading.link_live(uow, ALICE, basic, "81000001", "Broker-Live", "Alice-Pass-1")
            await trading.switch(uow, ALICE, basic, AccountKind.LIVE)
        bob_refused: DomainError | None = None
        try:
            async with UnitOfWork(sm) as uow:
                await trading.link_live(uow, BOB, basic, "81000002", "Broker-Live", "Bob-Pass-2")
        except DomainError as exc:
            bob_refused = exc
        with contextlib.suppress(DomainError):
            await _trade(trading, sm, ALICE, basic)
        assert len(broker.positions(81_000_001)) == 1, "Alice's order is not in Alice's account"
        assert broker.positions(81_000_002) == [], "Alice's order landed in Bob's account"
        assert bob_refused is not None and bob_refused.code == "TRD-NO-TERMINAL"  # the one terminal is Alice's
    finally:
        await runtime.close()
        await engine.dispose()
