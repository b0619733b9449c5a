"""The bridge goes down during order_send: a real ``python -m domain.market.bridge_server --sim`` process
executes the order, its answer is lost with the line. The order stays unknown (not failed), a retry is
refused, and once the bridge is reachable again the reconciler settles it from the terminal's history with
the real fill, exactly once (two reconcilers racing), audited, the user told in their language."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from bot.i18n import create_i18n
from bot.notify import OutboxNotifier
from bot.views.trading import SettlementNotice
from domain.db.terminals import SqlTerminalStore
from domain.db.engine import create_engine, create_sessionmaker
from domain.db.models import AuditRow, NotificationRow, OrderRow, UserRow
from domain.db.repositories import load_tiers
from domain.db.trading import SqlDemoStore
from domain.db.uow import UnitOfWork
from domain.market.bridge import BridgeGateway
from domain.market.models import Side
from domain.tiers import TierCatalog
from domain.trading.crypto import SecretBox
from domain.trading.locks import LocalLocks, PgAdvisoryLocks
from domain.trading.market import MarketHub
from domain.trading.pool import build_pool
from domain.trading.models import AccountKind, LinkedAccount, MarketUnavailable, OrderUnsettled, OutcomeUnknown
from domain.trading.reconcile import Reconciler
from domain.trading.service import TradingService
from tests.fakes.bridge_line import Line
from tests.servers import LIVE_LOGIN, LIVE_PASSWORD, LIVE_SERVER, sim_bridge
from tests.stores import seed_users

USER = 7001
LOGIN, PASSWORD, SERVER = LIVE_LOGIN, LIVE_PASSWORD, LIVE_SERVER  # the account the bridge serves
SECRET = b"bridge-test-secret"
SYMBOL = "BTCUSD"  # trades every day in the simulator: the test does not depend on the weekday


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[int]:
    async with sim_bridge(tmp_path / "bridge.log") as port:
        yield port


async def test_answer_lost_with_the_bridge_during_order_send_is_settled_from_history_once(
    db_url: str, bridge: int
) -> None:
    line = await Line(bridge).start()
    terminal = BridgeGateway(
        "127.0.0.1", bridge, timeout=5, retries=2, backoff=0.05, login=LOGIN, password=PASSWORD, server=SERVER
    )  # the bridge, not the line
    engine = create_engine(db_url)
    sm = create_sessionmaker(engine)
    pool = build_pool(
        "rpyc", SqlTerminalStore(sm), host="127.0.0.1", port=line.port, pool=None, paths=None, secret=None,
        secret_key=SECRET, timeout=3.0,
    )  # fmt: skip
    hub = MarketHub(backend="rpyc", host="127.0.0.1", port=line.port, timeout=3.0, pool=pool)
    try:
        await terminal.connect()
        login = (await terminal.account()).login
        await seed_users(sm, {USER: "basic"}, datetime.now(UTC))
        async with sm() as s:
            await s.execute(update(UserRow).where(UserRow.id == USER).values(language="ru"))
            await s.commit()
            tiers = TierCatalog(await load_tiers(s))
        await hub.start(SqlDemoStore(sm))
        box = SecretBox(SECRET)
        locks = PgAdvisoryLocks(engine) if engine.dialect.name == "postgresql" else LocalLocks()
        trading = TradingService(hub, tiers, box, locks=locks)
        async with UnitOfWork(sm) as uow:  # the user's live account on that terminal, in use
            await uow.trading.replace_account(LinkedAccount(USER, AccountKind.LIVE, login, SERVER),
                                              box.seal(PASSWORD), datetime.now(UTC))  # fmt: skip
            profile = await uow.trading.profile(USER)
            await uow.trading.save_profile(type(profile)(USER, active=AccountKind.LIVE), datetime.now(UTC))
            await uow.commit()
        basic = tiers.get("basic")
        async with UnitOfWork(sm) as uow:
            preview = await trading.preview_open(uow, USER, basic, Side.BUY, SYMBOL, 0.01, None, None)
        order_id = preview.order.id

        line.lose_answer_to(b"order_send", cut=True)
        async with UnitOfWork(sm) as uow:
            with pytest.raises(OutcomeUnknown):
                await trading.execute(uow, USER, basic, order_id)
        assert line.swallowed.is_set()
        [position] = await terminal.positions()  # the terminal did execute it, tagged with the order's id
        assert position.comment == order_id and position.volume == 0.01
        async with sm() as s:
            row = await s.get(OrderRow, order_id)
            assert row is not None and row.status == "sending" and row.result == {"unknown": "MKT-UNAVAILABLE"}

        async with UnitOfWork(sm) as uow:  # a retry is refused while the outcome is unknown
            with pytest.raises(OrderUnsettled):
                await trading.preview_open(uow, USER, basic, Side.BUY, SYMBOL, 0.01, None, None)

        notice = SettlementNotice(create_i18n(), lambda: OutboxNotifier(sm))
        reconcilers = [Reconciler(lambda: UnitOfWork(sm), trading, announce=notice) for _ in range(2)]
        assert await reconcilers[0].run_once() == []  # the bridge is still out of reach: it waits
        await line.restore()
        rounds = await asyncio.gather(*(r.run_once() for r in reconcilers))
        [settled] = [s for batch in rounds for s in batch]
        assert settled.ticket == position.ticket and settled.price == position.price_open
        assert settled.volume == 0.01

        async with sm() as s:
            row = await s.get(OrderRow, order_id)
            assert row is not None and row.status == "done" and row.retcode == 10009
            assert row.result["ticket"] == position.ticket and row.result["reconciled"] is True
            audits = (await s.execute(select(AuditRow).where(AuditRow.action == "trade.reconciled"))).scalars().all()
            notices = (await s.execute(select(NotificationRow))).scalars().all()
        assert len(audits) == 1 and audits[0].details["order"] == order_id
        [told] = notices
        assert told.user_id == USER and told.key == f"order:{order_id}:settled"
        assert f"Ордер {order_id[:8]} исполнен" in told.text and f"#{position.ticket}" in told.text
        assert len(await terminal.positions()) == 1  # nothing was sent twice
        # and the account takes orders again (the market-data connection the outage broke fails its first call
        # with MKT-UNAVAILABLE, "nothing was sent", and reconnects: the bridge gateway's documented behaviour)
        with contextlib.suppress(MarketUnavailable):
            await hub.tick(SYMBOL)
        async with UnitOfWork(sm) as uow:
            again = await trading.preview_open(uow, USER, basic, Side.BUY, SYMBOL, 0.01, None, None)
        assert again.check_ok
    finally:
        await hub.close()
        await terminal.close()
        await line.close()
        await engine.dispose()
