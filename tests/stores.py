"""What the service-level tests of trading, agents and analytics start from: a migrated database with
users in the given tiers, and a demo-trading hub on a clock the test drives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from domain.db.engine import create_engine, create_sessionmaker
from domain.db.models import UserRow
from domain.db.repositories import load_tiers
from domain.db.trading import SqlDemoStore
from domain.market.clock import ManualClock
from domain.tiers import TierCatalog
from domain.trading.market import MarketHub


@dataclass
class Market:
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    tiers: TierCatalog
    hub: MarketHub
    clock: ManualClock


async def seed_users(sessionmaker: async_sessionmaker[AsyncSession], users: Mapping[int, str], at: datetime) -> None:
    """One user per id, on the given tier."""
    async with sessionmaker() as s:
        for uid, tier in users.items():
            s.add(UserRow(id=uid, first_name="U", timezone="UTC", role="user", tier=tier, referral_code=f"r{uid}",
                          notifications={}, is_blocked=False, created_at=at, last_seen_at=at))  # fmt: skip
        await s.commit()


@asynccontextmanager
async def market(db_url: str, users: Mapping[int, str], start: datetime) -> AsyncIterator[Market]:
    engine = create_engine(db_url)
    sm = create_sessionmaker(engine)
    await seed_users(sm, users, start)
    async with sm() as s:
        tiers = TierCatalog(await load_tiers(s))
    clock = ManualClock(start)
    hub = MarketHub(clock=clock)
    await hub.start(SqlDemoStore(sm))
    try:
        yield Market(engine, sm, tiers, hub, clock)
    finally:
        await hub.close()
        await engine.dispose()
