"""Fixtures shared by every layer: databases, Redis, the fake Bot API, the bot harness.

Backends: every bot test runs twice, on the embedded stack (SQLite + in-memory)
and on the production stack (PostgreSQL + Redis, real servers on loopback).
In CI (CI=true) a missing server is a failure, never a skip.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from bot import migrate
from bot.settings import Settings
from tests.fakes.stripe import FakeStripe
from tests.fakes.telegram import FakeTelegram
from tests.harness import Harness, build_harness
from tests.servers import Server, postgres_missing, redis_missing, start_postgres, start_redis

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TEMPLATE_DB = "ht_template"
_db_names = itertools.count(1)


def require(missing: str | None) -> None:
    if missing:
        if IN_CI:
            pytest.fail(f"integration tests must run in CI, but: {missing}")
        pytest.skip(missing)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Server]:
    require(postgres_missing())
    server = start_postgres()
    try:
        asyncio.run(_admin(server.url, f"CREATE DATABASE {TEMPLATE_DB}"))
        migrate.upgrade(_with_db(server.url, TEMPLATE_DB))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Server]:
    require(redis_missing())
    server = start_redis()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


def _with_db(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + "/" + name


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def pg_url(pg_server: Server) -> AsyncIterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    name = f"t_{os.getpid()}_{next(_db_names)}"
    await _admin(pg_server.url, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    yield _with_db(pg_server.url, name)
    await _admin(pg_server.url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "hybrid.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def redis_url(redis_server: Server) -> AsyncIterator[str]:
    redis = Redis.from_url(redis_server.url)
    await redis.flushdb()
    await redis.aclose()
    yield redis_server.url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def db_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
async def fake_stripe() -> AsyncIterator[FakeStripe]:
    """Stripe's API on loopback, speaking its wire format (tests/fakes/stripe.py)."""
    fake = await FakeStripe().start()
    yield fake
    await fake.stop()


@pytest.fixture
async def telegram() -> AsyncIterator[FakeTelegram]:
    fake = await FakeTelegram().start()
    yield fake
    await fake.stop()


@pytest.fixture(params=["embedded", pytest.param("postgres+redis", marks=pytest.mark.integration)])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Settings for one of the two deployment stacks."""
    if request.param == "embedded":
        return Settings(database_url=request.getfixturevalue("sqlite_url"), data_dir=tmp_path, secret_key="test-secret")
    return Settings(
        database_url=request.getfixturevalue("pg_url"),
        redis_url=request.getfixturevalue("redis_url"),
        data_dir=tmp_path,
        secret_key="test-secret",
    )


@pytest.fixture
async def harness(stack: Settings, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    h = await build_harness(stack, telegram)
    yield h
    await h.close()
