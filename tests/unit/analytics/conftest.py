"""Fixtures for the analytics service tests: a sim terminal on a clock the test drives, users of two tiers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.analytics.service import AnalyticsService
from domain.db.engine import create_engine, create_sessionmaker
from domain.db.models import UserRow
from domain.db.repositories import load_tiers
from domain.db.trading import SqlDemoStore
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from domain.tiers import TierCatalog
from domain.trading.crypto import SecretBox
from domain.trading.market import MarketHub
from domain.trading.service import TradingService

START = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday: FX markets open
T0 = int(START.timestamp())


@dataclass
class Env:
    sessionmaker: async_sessionmaker[AsyncSession]
    hub: MarketHub
    service: AnalyticsService
    trading: TradingService
    tiers: TierCatalog
    clock: ManualClock


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[Env]:
    engine = create_engine(db_url)
    sm = create_sessionmaker(engine)
    async with sm() as s:
        tiers = TierCatalog(await load_tiers(s))
        for uid in range(1, 8):
            s.add(UserRow(id=uid, first_name="U", timezone="UTC", role="user", tier="basic" if uid < 7 else "pro",
                          referral_code=f"r{uid}", notifications={}, is_blocked=False, created_at=START,
                          last_seen_at=START))  # fmt: skip
        await s.commit()
    clock = ManualClock(START)
    hub = MarketHub(clock=clock)
    await hub.start(SqlDemoStore(sm))
    trading = TradingService(hub, tiers, SecretBox(b"unit-test-secret"))
    yield Env(sm, hub, AnalyticsService(trading, hub, min_peers=3), trading, tiers, clock)
    await engine.dispose()


async def login(env: Env, user: int = 1) -> int:
    async with UnitOfWork(env.sessionmaker) as uow:
        return (await env.trading.demo_account(uow, user)).login
