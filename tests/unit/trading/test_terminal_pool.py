"""The terminal pool and the linking rules, on both databases: demo logins and other users' accounts refused, leases exclusive under
concurrency, and a terminal found on the wrong account refuses the order, is audited and logged back in
(or leaves the pool)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from domain.db.engine import create_engine, create_sessionmaker
from domain.db.models import AuditRow, TerminalRow
from domain.db.uow import UnitOfWork
from domain.errors import DomainError
from domain.market.clock import ManualClock
from domain.market.models import Side
from domain.market.sim import SimTerminal
from domain.market.sim_module import SimMT5
from domain.tiers import TierCatalog
from domain.trading.models import AccountKind
from domain.trading.market import MarketHub
from domain.trading.service import TradingService
from tests.stores import market, seed_users

START = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday: FX markets open
ALICE, BOB, CAROL = 11, 12, 13



@dataclass
class Env:
    sm: object
    hub: MarketHub
    trading: TradingService
    tiers: TierCatalog
    clock: ManualClock


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    from domain.trading.crypto import SecretBox

    async with market(db_url, {ALICE: "basic", BOB: "basic", CAROL: "pro"}, START) as m:
        yield Env(m.sessionmaker, m.hub, TradingService(m.hub, m.tiers, SecretBox(b"unit")), m.tiers, m.clock)


async def _link(env: Env, user: int, login: int | str, server: str, password: str) -> DomainError | None:
    try:
        async with UnitOfWork(env.sm) as uow:  # type: ignore[arg-type]
            await env.trading.link_live(uow, user, env.tiers.get("pro"), str(login), server, password)
    except DomainError as exc:
        return exc
    return None


async def _refusals(env: Env) -> list[dict[str, object]]:
    async with env.sm() as s:  # type: ignore[operator]
        rows = await s.scalars(select(AuditRow).where(AuditRow.action == "trading.link_refused").order_by(AuditRow.id))
        return [dict(r.details, user=r.user_id) for r in rows]


async def test_demo_logins_and_other_users_accounts_cannot_be_linked(env: Env) -> None:
    server = env.hub.terminal.server
    async with UnitOfWork(env.sm) as uow:  # type: ignore[arg-type]
        alice_demo = (await env.trading.demo_account(uow, ALICE)).login
        bob_demo = (await env.trading.demo_account(uow, BOB)).login
    # platform demo logins, one's own or another's, whatever the password (they have none)
    for login in (alice_demo, bob_demo):
        for password in ("anything", "x"):
            refused = await _link(env, ALICE, login, server, password)
            assert refused is not None and refused.code == "TRD-DEMO-LOGIN"
    # an account the terminal reports as demo trade mode, even with a password
    demo_mode = env.hub.terminal.open_demo_account(5000.0, password="Demo-Pass-1", login=7_700_001)
    refused = await _link(env, ALICE, demo_mode, server, "Demo-Pass-1")
    assert refused is not None and refused.code == "TRD-DEMO-LOGIN"
    # a real account: Alice links it; Bob (right password or not, any spelling of the server) cannot
    real = env.hub.terminal.open_real_account("Real-Pass-7", 8000.0, login=7_700_002)
    assert await _link(env, ALICE, real, server, "Real-Pass-7") is None
    for spelling in (server, server.lower(), f"  {server.upper()} "):
        refused = await _link(env, BOB, real, spelling, "Real-Pass-7")
        assert refused is not None and refused.code == "TRD-ACCOUNT-TAKEN"
    # a wrong password is refused by the terminal
    other = env.hub.terminal.open_real_account("Carol-Pass", 8000.0, login=7_700_003)
    refused = await _link(env, CAROL, other, server, "not-it")
    assert refused is not None and refused.code == "TRD-LINK-FAILED"
    async with UnitOfWork(env.sm) as uow:  # type: ignore[arg-type]
        assert (await env.trading.live_account(uow, ALICE)).login == real  # type: ignore[union-attr]
        assert await env.trading.live_account(uow, BOB) is None
        assert await env.trading.live_account(uow, CAROL) is None
    reasons = [(r["user"], r["reason"]) for r in await _refusals(env)]
    assert reasons.count((ALICE, "TRD-DEMO-LOGIN")) == 5
    assert reasons.count((BOB, "TRD-ACCOUNT-TAKEN")) == 3 and (CAROL, "TRD-LINK-FAILED") in reasons
    assert all("Pass" not in str(r) for r in await _refusals(env))  # no password in the audit


def test_a_passwordless_demo_account_never_opens_with_a_password() -> None:
    terminal = SimTerminal(0)
    demo = terminal.open_demo_account()
    assert terminal.authenticate(demo, None)
    assert not terminal.authenticate(demo, "any-password")
    assert not SimMT5(terminal).initialize(login=demo, password="any-password")


async def test_leases_are_exclusive_under_concurrency(db_url: str) -> None:
    """Twelve accounts race for three terminals: three win, each a different terminal; the same account
    racing itself gets one terminal; another user's account is refused; a released terminal is re-used."""
    from domain.db.terminals import SqlTerminalStore
    from domain.trading.models import AccountTaken, NoFreeTerminal

    engine = create_engine(db_url)
    sm = create_sessionmaker(engine)
    users = {100 + i: "basic" for i in range(12)}
    await seed_users(sm, users, START)
    store = SqlTerminalStore(sm)
    endpoints = ["10.0.0.1:18812", "10.0.0.2:18812", "10.0.0.3:18812"]
    now = datetime.now(UTC)
    await store.sync(endpoints, now)
    try:
        results = await asyncio.gather(
            *(store.lease(endpoints, uid, 9_000_000 + uid, "Broker-Live", now) for uid in users),
            return_exceptions=True,
        )
        won = [r for r in results if not isinstance(r, BaseException)]
        assert len(won) == 3 and {w.endpoint for w in won} == set(endpoints)
        assert all(isinstance(r, NoFreeTerminal) for r in results if isinstance(r, BaseException))
        async with sm() as s:
            rows = list(await s.scalars(select(TerminalRow)))
        assert sorted((r.endpoint, r.login) for r in rows) == sorted((w.endpoint, w.login) for w in won)
        # the same account, many times at once: one terminal
        first = won[0]
        again = await asyncio.gather(*(store.lease(endpoints, first.user_id, first.login, "broker-live", now)
                                       for _ in range(6)))  # fmt: skip
        assert {a.endpoint for a in again} == {first.endpoint}
        with pytest.raises(AccountTaken):
            await store.lease(endpoints, 999_999, first.login, "Broker-Live", now)
        # unlink frees it; the next account takes it
        assert await store.release(first.login, "Broker-Live", first.user_id) == first.endpoint
        losers = [uid for uid in users if uid not in {w.user_id for w in won}]
        loser = losers[0]
        taken = await store.lease(endpoints, loser, 9_000_000 + loser, "Broker-Live", now)
        assert taken.endpoint == first.endpoint and taken.fresh
        figures = await store.figures(endpoints)
        assert (figures.size, figures.leased, figures.free, figures.unhealthy) == (3, 3, 0, 0)
        # a lease with no linked account behind it (a link that crashed half-way) is reclaimed later
        later = now + timedelta(minutes=11)
        reclaimed = await store.lease(endpoints, losers[1], 9_100_000, "Broker-Live", later)
        assert reclaimed.fresh
    finally:
        await engine.dispose()


async def test_a_terminal_found_on_another_account_refuses_and_is_logged_back_or_taken_out(db_url: str) -> None:
    from domain.db.terminals import SqlTerminalStore
    from domain.db.trading import SqlDemoStore
    from domain.market.bridge import RemoteModule
    from domain.market.sim import _verifier
    from domain.trading.crypto import SecretBox
    from domain.trading.models import AccountKind
    from domain.trading.pool import Endpoint, TerminalPool
    from tests.unit.market.test_bridge_auth import SECRET, AuthServed

    clock = ManualClock(START)
    broker = SimTerminal(5, clock=clock)
    a = broker.open_real_account("Pw-A", 9000.0, login=7_800_001, server="Broker-Live")
    b = broker.open_real_account("Pw-B", 9000.0, login=7_800_002, server="Broker-Live")
    served = AuthServed(SimMT5(broker), SECRET)
    engine = create_engine(db_url)
    sm = create_sessionmaker(engine)
    await seed_users(sm, {ALICE: "basic"}, START)
    async with sm() as s:
        from domain.db.repositories import load_tiers

        tiers = TierCatalog(await load_tiers(s))
    endpoint = Endpoint(f"127.0.0.1:{served.port}", "127.0.0.1", served.port)
    pool = TerminalPool([endpoint], SqlTerminalStore(sm), secret=SECRET, timeout=5)
    hub = MarketHub(backend="rpyc", host="127.0.0.1", port=served.port, clock=clock, pool=pool)
    await hub.start(SqlDemoStore(sm))
    trading, basic = TradingService(hub, tiers, SecretBox(b"unit")), tiers.get("basic")
    rogue = RemoteModule("127.0.0.1", served.port, retries=1, secret=SECRET)

    async def preview() -> str:
        async with UnitOfWork(sm) as uow:
            p = await trading.preview_open(uow, ALICE, basic, Side.BUY, "EURUSD", 0.1, None, None)
            return p.order.id

    async def mismatches() -> list[dict[str, object]]:
        async with sm() as s:
            rows = await s.scalars(select(AuditRow).where(AuditRow.action == "trading.terminal_mismatch"))
            return [dict(r.details) for r in rows]

    try:
        async with UnitOfWork(sm) as uow:
            await trading.link_live(uow, ALICE, basic, str(a), "Broker-Live", "Pw-A")
            await trading.switch(uow, ALICE, basic, AccountKind.LIVE)
        assert rogue.login(b, password="Pw-B", server="Broker-Live")  # someone logs the terminal in to B
        with pytest.raises(DomainError) as err:
            await preview()
        assert err.value.code == "TRD-TERMINAL-MISMATCH"
        assert broker.positions(a) == [] and broker.positions(b) == []
        assert [m["relogged"] for m in await mismatches()] == [True]
        order = await preview()  # logged back in to A: the retry trades A
        async with UnitOfWork(sm) as uow:
            assert (await trading.execute(uow, ALICE, basic, order)).ok
        assert len(broker.positions(a)) == 1 and broker.positions(b) == []
        # now the terminal cannot be logged back in (A's password changed at the broker): out of the pool
        broker._accounts[a].password = _verifier("changed-at-the-broker", "salt")
        assert rogue.login(b, password="Pw-B", server="Broker-Live")
        with pytest.raises(DomainError) as err:
            async with UnitOfWork(sm) as uow:
                await trading.positions(uow, ALICE, basic)
        assert err.value.code == "TRD-TERMINAL-MISMATCH"
        assert [m["relogged"] for m in await mismatches()] == [True, False]
        async with sm() as s:
            row = await s.get(TerminalRow, endpoint.key)
            assert row is not None and (row.status, row.login) == ("unhealthy", None)
        figures = await hub.pool_figures()
        assert figures is not None and (figures.size, figures.leased, figures.free, figures.unhealthy) == (1, 0, 0, 1)
    finally:
        rogue.close()
        await hub.close()
        served.close()
        await engine.dispose()


def _free_block(n: int) -> int:
    """A base port whose next ``n`` ports are free."""
    import socket

    from tests.servers import free_port

    for _ in range(50):
        base = free_port()
        try:
            socks = []
            for i in range(1, n + 1):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no free port block")


async def test_native_runs_one_child_terminal_per_account(db_url: str) -> None:
    """``native`` with MT5_TERMINAL_PATHS: each account's terminal is a child bridge process (the sim module
    stands in for MetaTrader5 in the children); this process never imports MetaTrader5 for an account."""
    import sys

    from domain.db.terminals import SqlTerminalStore
    from domain.db.trading import SqlDemoStore
    from domain.trading.crypto import SecretBox
    from domain.trading.pool import NativeTerminals, TerminalPool

    accounts = ["7900001:Nat-Pass-1:Broker-Live", "7900002:Nat-Pass-2:Broker-Live"]
    paths = [r"C:\MT5\terminal-a\terminal64.exe", r"C:\MT5\terminal-b\terminal64.exe"]

    def child(i: int, path: str) -> list[str]:
        return ["--sim", *(x for a in accounts for x in ("--account", a)), "--terminal-path", path]

    base = _free_block(2)
    native = NativeTerminals(paths, base_port=base, secret=b"native-children", child_args=child)
    engine = create_engine(db_url)
    sm = create_sessionmaker(engine)
    await seed_users(sm, {ALICE: "basic", BOB: "basic"}, START)
    async with sm() as s:
        from domain.db.repositories import load_tiers

        tiers = TierCatalog(await load_tiers(s))
    pool = TerminalPool(native.endpoints(), SqlTerminalStore(sm), secret=b"native-children", native=native)
    hub = MarketHub(backend="native", module=SimMT5(SimTerminal(0)), pool=pool)  # the data feed's module
    await hub.start(SqlDemoStore(sm))
    trading, basic = TradingService(hub, tiers, SecretBox(b"unit")), tiers.get("basic")
    other = NativeTerminals(paths, base_port=base, secret=b"native-children", child_args=child)
    try:
        for user, raw in ((ALICE, accounts[0]), (BOB, accounts[1])):
            login, password, server = raw.split(":")
            async with UnitOfWork(sm) as uow:
                await trading.link_live(uow, user, basic, login, server, password)
        assert len(native._children) == 2  # one child per account, on its own installation
        async with sm() as s:
            leases = {r.login: r.endpoint for r in await s.scalars(select(TerminalRow))}
        assert leases == {7900001: f"native:{paths[0]}", 7900002: f"native:{paths[1]}"}
        for user, login in ((ALICE, 7900001), (BOB, 7900002)):  # each reads its own account through its child
            async with UnitOfWork(sm) as uow:
                await trading.switch(uow, user, basic, AccountKind.LIVE)
                account, info = await trading.balance(uow, user, basic)
            assert (account.login, info.login, info.is_demo) == (login, login, False)
        # another process on the host finds the children running and starts none
        for endpoint in other.endpoints():
            await other.ensure(endpoint)
        assert other._children == {}
        assert "MetaTrader5" not in sys.modules
        children = list(native._children.values())
    finally:
        await hub.close()
        await engine.dispose()
    assert [p.returncode is not None for p in children] == [True, True]  # closing the pool stops its children


def test_a_pinned_terminal_always_opens_its_installation_in_portable_mode() -> None:
    from domain.market.bridge_server import PinnedTerminal
    from tests.unit.market.test_bridge import Recording

    terminal = SimTerminal(0)
    login = terminal.open_real_account("P-1", login=7950001)
    recording = Recording(SimMT5(terminal))
    pinned = PinnedTerminal(recording, r"C:\MT5\t1\terminal64.exe")
    assert pinned.initialize(r"C:\elsewhere.exe", login=login, password="P-1", server=terminal.server)
    assert recording.calls[0] == (
        "initialize", (r"C:\MT5\t1\terminal64.exe",), {"login": login, "password": "P-1", "server": terminal.server,
                                                        "portable": True},
    )  # fmt: skip
