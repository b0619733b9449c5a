"""The AI daily quota is a UTC day: changing the profile's time zone never renews it, users see when it
renews in their own time, and the Stripe overage counts the same days (tests/unit/billing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.views.settings import ConfigCB
from domain.market.clock import ManualClock
from tests.harness import Harness


class Wall:
    """The meter's clock (when an analysis happens, and so which quota day it counts in), set by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def ai(harness: Harness, lang: str = "en") -> str:
    return (await harness.send("/ai EURUSD", lang=lang))[-1].text


async def test_changing_the_time_zone_does_not_renew_the_ai_quota(harness: Harness, clock: ManualClock) -> None:
    wall = Wall(datetime(2026, 11, 18, 20, 0, tzinfo=UTC))
    harness.app.meter.clock = wall
    for n in range(1, 4):
        assert f"AI analyses today: {n} / 3 · renew at 00:00 (midnight UTC)" in await ai(harness)
    assert "You've used all your AI analyses for today (daily limit: 3). They renew at 00:00 your time" in await ai(harness)
    # An hour later it is midnight in Moscow: a window starting at the local midnight would start afresh.
    wall.at += timedelta(hours=1)
    await harness.press(ConfigCB(action="settz", value="Europe/Moscow").pack())
    moved = await ai(harness)
    assert "You've used all your AI analyses for today (daily limit: 3). They renew at 03:00 your time (midnight UTC)" in moved
    # ...and so would any other zone's
    for zone in ("Asia/Kolkata", "Pacific/Kiritimati", "America/Los_Angeles", "Asia/Tehran"):
        wall.at += timedelta(minutes=30)
        await harness.press(ConfigCB(action="settz", value=zone).pack())
        assert "AI-QUOTA" in await ai(harness), zone
    status = (await harness.send("/status"))[-1].text
    assert "AI analyses today: 3 / 3 · renew at 03:30 (midnight UTC)" in status  # in Tehran (UTC+3:30)
    ru = await ai(harness, lang="ru")
    assert "AI-QUOTA" in ru and "полночь UTC" in ru
    wall.at = datetime(2026, 11, 19, 0, 0, 1, tzinfo=UTC)  # the quota renews at midnight UTC, for everyone
    assert "AI analyses today: 1 / 3" in await ai(harness)
