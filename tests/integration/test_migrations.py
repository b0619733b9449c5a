"""Alembic stairway: every revision up and down, on SQLite and PostgreSQL; models match the schema."""

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from bot import migrate
from domain.db.engine import create_engine
from domain.db.models import Base


def _revisions(url: str) -> list[str]:
    script = ScriptDirectory.from_config(migrate.alembic_config(url))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'stairs.db'}"
    return str(request.getfixturevalue("pg_empty_url"))


@pytest.fixture
async def pg_empty_url(pg_server):  # type: ignore[no-untyped-def]
    from tests.conftest import _admin, _with_db

    name = "stairway"
    await _admin(pg_server.url, f"DROP DATABASE IF EXISTS {name}")
    await _admin(pg_server.url, f"CREATE DATABASE {name}")
    yield _with_db(pg_server.url, name)
    await _admin(pg_server.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def _current(url: str) -> str | None:
    engine = create_engine(url)
    try:
        return await migrate.current(engine)
    finally:
        await engine.dispose()


async def _diff(url: str) -> list[object]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
    finally:
        await engine.dispose()


async def test_stairway(empty_url: str) -> None:
    revisions = _revisions(empty_url)
    assert revisions, "no migrations found"
    previous: str | None = None
    for revision in revisions:  # alembic runs its own loop: keep it off this one
        await asyncio.to_thread(migrate.upgrade, empty_url, revision)
        assert await _current(empty_url) == revision
        await asyncio.to_thread(migrate.downgrade, empty_url, previous or "base")
        assert await _current(empty_url) == previous
        await asyncio.to_thread(migrate.upgrade, empty_url, revision)
        previous = revision
    assert await _diff(empty_url) == []  # the ORM models describe exactly what migrations build


async def test_the_old_demo_snapshot_becomes_shared_account_rows(empty_url: str) -> None:
    """0009 carries a 0002-style one-row snapshot over; the account then trades on, password and all."""
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from domain.db.trading import SqlDemoStore
    from domain.market.clock import ManualClock
    from domain.market.sim import SimTerminal
    from domain.trading import simstate
    from domain.trading.market import MarketHub

    await asyncio.to_thread(migrate.upgrade, empty_url, "0008")
    old = SimTerminal(0, clock=ManualClock(datetime(2026, 11, 18, 10, tzinfo=UTC)))
    login = old.open_demo_account(5_000.0, password="Broker-Pass-1")
    snapshot_acc = old._accounts[login]
    snapshot = {
        "version": 1, "seed": 0, "done_g": snapshot_acc.done_g, "next_login": login + 1,
        "next_order": 100_000_010, "next_deal": 200_000_010,
        "accounts": [{"login": login, "password": "Broker-Pass-1", "name": "Demo", "currency": "USD",
                      "leverage": 100, "balance": 5_000.0, "positions": [],
                      "deals": [list(d) for d in snapshot_acc.deals]}],
    }  # fmt: skip
    engine = create_engine(empty_url)
    try:
        async with engine.begin() as conn:
            old_table = sa.table("sim_snapshots", sa.column("name"), sa.column("data", sa.JSON),
                                 sa.column("updated_at"))  # fmt: skip
            await conn.execute(sa.insert(old_table).values(name="demo-terminal", data=snapshot,
                                                           updated_at=datetime.now(UTC)))  # fmt: skip
        await asyncio.to_thread(migrate.upgrade, empty_url, "0009")
        async with engine.connect() as conn:
            state = (await conn.execute(sa.text("SELECT state FROM sim_accounts"))).scalar_one()
            ticket = (await conn.execute(sa.text("SELECT value FROM sim_sequences WHERE name = 'ticket'"))).scalar()
        stored = state if isinstance(state, dict) else __import__("json").loads(state)
        assert "Broker-Pass-1" not in str(stored) and stored["password"].startswith("pbkdf2$")
        assert ticket == 200_000_010

        from domain.db.engine import create_sessionmaker

        hub = MarketHub(clock=ManualClock(datetime(2026, 11, 18, 11, tzinfo=UTC)))
        await hub.start(SqlDemoStore(create_sessionmaker(engine)))
        gw = await hub.connect_live(1, login, "Broker-Pass-1", hub.terminal.server)
        assert (await gw.account()).balance == 5_000.0
        assert simstate.state(hub.terminal._accounts[login])["balance"] == 5_000.0
    finally:
        await engine.dispose()


async def test_start_up_revision_checks_agree_with_alembic(empty_url: str) -> None:
    """`run` checks the schema without alembic (bot/migrate.py): the same head and current as alembic's own."""
    assert migrate.head(empty_url) == ScriptDirectory.from_config(migrate.alembic_config(empty_url)).get_current_head()
    assert await _current(empty_url) is None

    async def alembic_current() -> str | None:
        engine = create_engine(empty_url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(lambda c: MigrationContext.configure(c).get_current_revision())
        finally:
            await engine.dispose()

    for revision in ("0003", "head"):
        await asyncio.to_thread(migrate.upgrade, empty_url, revision)
        assert await _current(empty_url) == await alembic_current()
    assert await _current(empty_url) == migrate.head(empty_url)
