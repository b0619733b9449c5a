"""Engine and session factory for both backends."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry


# Enough pooled connections for a process's concurrent updates (24) and its background tasks: an
# overflow connection is opened and closed per checkout, with its prepared statements lost each time.
# deploy/compose.yaml sizes PostgreSQL's max_connections from these.
POOL_SIZE = 30
MAX_OVERFLOW = 10


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        engine = create_async_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", MAX_OVERFLOW)
    # No pre-ping: it costs three round trips per checkout (a third of the webhook path's socket time).
    # A connection broken by a server restart fails once; SQLAlchemy then invalidates the whole pool.
    kwargs.setdefault("pool_pre_ping", False)
    return create_async_engine(url, **kwargs)


def _sqlite_pragmas(conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = conn.cursor()
    # WAL: readers never block the writer; NORMAL sync is durable across app crashes.
    for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def backend_name(engine: AsyncEngine) -> str:
    return {"sqlite": "SQLite", "postgresql": "PostgreSQL"}.get(engine.dialect.name, engine.dialect.name)
