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
