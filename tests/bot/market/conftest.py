"""Fixtures for market and trading flows: a harness without rate limits, on a clock the test drives."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.settings import Settings
from domain.market.clock import ManualClock
from domain.ratelimit import Decision
from tests.fakes.telegram import FakeTelegram
from tests.harness import Harness, build_harness

START = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday: FX markets open


class Unlimited:
    """These flows send more than a free tier's burst; rate limits are tested elsewhere."""

    async def hit(self, key: str, rate_per_minute: int, burst: int) -> Decision:
        return Decision(True)


@pytest.fixture
async def harness(stack: Settings, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    h = await build_harness(stack, telegram, limiter=Unlimited())
    yield h
    await h.close()


@pytest.fixture
def clock(harness: Harness) -> ManualClock:
    clock = ManualClock(START)
    harness.app.market.hub.use_clock(clock)
    return clock
