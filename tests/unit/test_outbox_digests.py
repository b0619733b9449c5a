"""Performance digests through the outbox: at the user's local evening, once per period, in their language."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.analytics.metrics import Period
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from tests.bot.market.conftest import START
from tests.harness import Harness
from workers.digests import PerformanceDigests, due


def test_digests_are_due_at_the_local_evening_and_weekly_on_sunday() -> None:
    tuesday = datetime(2026, 11, 24, 20, 59, tzinfo=UTC)
    assert due(tuesday, 7) == []
    assert due(tuesday.replace(hour=21), 7) == [(Period.TODAY, "digest:perf:day:7:2026-11-24")]
    sunday = datetime(2026, 11, 29, 18, 0, tzinfo=UTC)
    assert due(sunday, 7) == [(Period.WEEK, "digest:perf:week:7:2026-W48")]
    assert [p for p, _ in due(sunday.replace(hour=22), 7)] == [Period.TODAY, Period.WEEK]


async def _trade(h: Harness, user: int, lang: str) -> None:
    preview = await h.send("/trade buy EURUSD 0.1", user=user, lang=lang)
    confirm = next(data for c in preview for _, data in c.buttons if data and data.startswith("tr:ok:"))
    await h.press(confirm, user=user, lang=lang)
    async with UnitOfWork(h.app.sessionmaker) as uow:
        await uow.users.update(user, tier="pro")
        await uow.commit()


async def test_a_trader_gets_one_daily_digest_in_their_language(harness: Harness) -> None:
    h = harness
    h.deliver_outbox = False
    h.app.market.hub.use_clock(ManualClock(START))  # a weekday: the simulated market is open
    await _trade(h, 1001, "ru")
    await _trade(h, 1002, "en")
    await h.press("cfg:notify:digest", user=1002)  # 1002 switched digests off
    evening = datetime.now(UTC).replace(hour=21, minute=30)
    while evening.weekday() == 6:  # keep the weekly digest out of this test
        evening += timedelta(days=1)
    assert h.app.notifier is not None
    digests = PerformanceDigests(
        h.app.sessionmaker, h.app.analytics, h.app.tiers, h.app.i18n, h.app.notifier, clock=lambda: evening
    )
    assert await digests.traders(evening) == [1001, 1002]  # both traded; 1002 muted digests
    assert await digests.run() == 1
    assert await digests.run() == 0  # once per user and day, however often the job runs
    before = len(h.telegram.sent())
    await h.app.drain_outbox(h.bot)
    sent = h.telegram.sent()[before:]
    assert [int(c.params["chat_id"]) for c in sent] == [1001]
    assert "Ваша сводка за день" in sent[0].text and "/config" in sent[0].text
    early = PerformanceDigests(
        h.app.sessionmaker, h.app.analytics, h.app.tiers, h.app.i18n, h.app.notifier,
        clock=lambda: evening.replace(hour=9) + timedelta(days=1),
    )  # fmt: skip
    assert await early.run() == 0  # the next day's digest waits for the evening
