"""The market feed: new ticks only, reconnects with backoff after the gateway goes down."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from domain.alerts.models import AlertKind, AlertRule
from domain.alerts.service import AlertEvaluator
from domain.market.clock import ManualClock
from domain.trading.market import MarketHub
from workers.market_feed import MarketFeed


class MemoryAlerts:
    def __init__(self) -> None:
        self.marked: list[tuple[int, int, float, bool]] = []

    async def list_active(self, symbols=None):  # type: ignore[no-untyped-def]
        return []

    async def mark_triggered(self, alert_id: int, time_msc: int, price: float, deactivate: bool) -> bool:
        self.marked.append((alert_id, time_msc, price, deactivate))
        return True


async def _until(predicate, limit: int = 2000) -> None:  # type: ignore[no-untyped-def]
    for _ in range(limit):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition never held")


async def test_feed_publishes_new_ticks_and_feeds_bars_and_alerts() -> None:
    clock = ManualClock(datetime(2026, 11, 18, 10, 0, tzinfo=UTC))
    hub = MarketHub(clock=clock)
    repo = MemoryAlerts()
    evaluator = AlertEvaluator(repo)
    feed = MarketFeed(hub, evaluator)
    price = (await hub.tick("EURUSD")).bid
    evaluator.add(AlertRule(1, 7, "EURUSD", AlertKind.BELOW, threshold=round(price + 1, 5)))  # holds at once
    assert feed.symbols() == ["EURUSD"]  # watched because of the alert
    assert await feed.poll_once() == 1
    assert feed.symbols() == []  # the one-shot alert fired: nothing to watch
    hub.watch(["EURUSD"])  # someone asked for a quote
    assert await feed.poll_once() == 0  # same tick: not published twice
    clock.advance(65)
    assert await feed.poll_once() == 1
    assert feed.bars.bars("EURUSD", feed.bars.timeframes[0], include_current=True)
    await evaluator.flush()
    assert [m[0] for m in repo.marked] == [1]


async def test_feed_survives_a_gateway_outage_and_reconnects() -> None:
    hub = MarketHub(clock=ManualClock(datetime(2026, 11, 18, 10, 0, tzinfo=UTC)))
    feed = MarketFeed(hub, AlertEvaluator(MemoryAlerts()), interval=0.001, max_backoff=0.002)
    hub.watch(["EURUSD"])
    hub.terminal.inject("disconnect", count=None)
    task = asyncio.create_task(feed.run())
    try:
        await _until(lambda: feed.failures >= 3)
        assert not hub.connected and not task.done()
        hub.terminal.clear_faults()
        await _until(lambda: hub.connected)
        assert feed.failures == 0
    finally:
        task.cancel()
