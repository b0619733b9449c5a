"""A fired alert is committed (with its outbox message) in the poll that detected it.

Before, it waited in an in-memory queue for another task to persist it: a crash in that window lost the
firing, and a one-shot, cross or percent-move alert never fired again. Here the process "crashes" right
after the poll (its memory is dropped, nothing is flushed), a new process starts on the same database, and
the user gets the alert exactly once. Runs on both stacks.
"""

from __future__ import annotations

from sqlalchemy import func, select

from domain.db.models import AlertRow, NotificationRow
from domain.market.clock import ManualClock
from tests.harness import Harness, build_harness


def _fired(harness: Harness) -> list[str]:
    return [c.text for c in harness.telegram.sent() if "Alert #" in c.text and "Price" in c.text]


async def test_a_crash_between_detection_and_send_loses_nothing_and_sends_once(
    harness: Harness, clock: ManualClock
) -> None:
    price = (await harness.app.market.hub.tick("EURUSD")).bid
    await harness.send(f"/alerts add EURUSD < {round(price + 0.01, 5)}")  # holds at once
    runtime = harness.app.market
    runtime.attach_outbox(harness.app.i18n)  # production: the firing and its message in one transaction
    clock.advance(5)
    assert await runtime.feed.poll_once() == 1

    # the crash: whatever this process still held in memory is gone, and nothing flushes it
    runtime.evaluator._fired.clear()
    async with harness.app.sessionmaker() as session:
        assert (await session.execute(select(AlertRow.status))).scalar_one() == "triggered"
        assert await session.scalar(select(func.count()).select_from(NotificationRow).where(NotificationRow.kind == "alert")) == 1

    restarted = await build_harness(harness.app.settings, harness.telegram)
    try:
        restarted.app.market.hub.use_clock(clock)
        rt2 = restarted.app.market
        rt2.attach_outbox(restarted.app.i18n)
        assert len(rt2.evaluator.index) == 0  # the one-shot rule is done
        await restarted.app.drain_outbox(restarted.bot)
        for _ in range(5):
            clock.advance(5)
            await rt2.feed.poll_once()
        await restarted.app.drain_outbox(restarted.bot)
        assert len(_fired(harness)) == 1
    finally:
        await restarted.close()
