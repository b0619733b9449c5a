"""Fixtures for the analytics service tests: a sim terminal on a clock the test drives, users of two tiers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.analytics.service import AnalyticsService
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from domain.tiers import TierCatalog
from domain.trading.crypto import SecretBox
from domain.trading.market import MarketHub
from domain.trading.service import TradingService
from tests.stores import market

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
    async with market(db_url, {uid: "basic" if uid < 7 else "pro" for uid in range(1, 8)}, START) as m:
        trading = TradingService(m.hub, m.tiers, SecretBox(b"unit-test-secret"))
        yield Env(m.sessionmaker, m.hub, AnalyticsService(trading, m.hub, min_peers=3), trading, m.tiers, m.clock)


async def login(env: Env, user: int = 1) -> int:
    async with UnitOfWork(env.sessionmaker) as uow:
        return (await env.trading.demo_account(uow, user)).login
