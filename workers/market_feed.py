"""The market feed: polls the gateway's last tick of every watched symbol at a fixed cadence
and publishes new ticks on the tick bus (bars and the alert evaluator listen there).

Watched symbols are those with live alerts plus those users asked about in
the last hour: in this process and, with Redis, in any process of the
deployment (``shared``: workers/partition.py SharedWatch). With several
worker processes each polls only its share of them (``share``: FeedShare) and
its alert evaluator judges only those symbols' ticks. A gateway failure
marks the hub disconnected and retries with exponential backoff; the feed
never dies of it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from domain.alerts.service import AlertEvaluator
from domain.market.bars import BarAggregator
from domain.market.errors import GatewayError
from domain.market.models import Tick
from domain.market.tickbus import InProcessTickBus, TickBus
from domain.trading.market import MarketHub

if TYPE_CHECKING:
    from workers.partition import FeedShare, SharedWatch

log = logging.getLogger(__name__)

WATCH_TTL = 3600.0


class MarketFeed:
    def __init__(
        self,
        hub: MarketHub,
        evaluator: AlertEvaluator,
        *,
        interval: float = 1.0,
        max_backoff: float = 60.0,
        bus: TickBus | None = None,
        shared: SharedWatch | None = None,
        share: FeedShare | None = None,
    ) -> None:
        self.hub = hub
        self.evaluator = evaluator
        self.bus: TickBus = bus if bus is not None else InProcessTickBus()
        self.bars = BarAggregator()
        self.bus.add_listener(self.bars.on_tick, many=self.bars.on_ticks)
        self.share = share
        if share is None:
            self.bus.add_listener(evaluator.on_tick, many=evaluator.on_ticks)
        else:
            self.bus.add_listener(self._evaluate, many=self._evaluate_many)
        self.interval = interval
        self.max_backoff = max_backoff
        self._last: dict[str, int] = {}
        self.failures = 0
        self.shared = shared
        self._shared: set[str] = set()  # the deployment-wide watch set, as last read

    def symbols(self) -> list[str]:
        now = time.monotonic()
        for s, at in list(self.hub.watched.items()):
            if now - at > WATCH_TTL:
                del self.hub.watched[s]
        wanted = {r.symbol for r in self.evaluator.index.rules()} | set(self.hub.watched) | self._shared
        return sorted(s for s in wanted if self.share is None or self.share.owns(s))

    def _evaluate(self, tick: Tick) -> None:
        if self.share is None or self.share.owns(tick.symbol):
            self.evaluator.on_tick(tick)

    def _evaluate_many(self, ticks: Iterator[Tick]) -> None:
        """The batch form: the index takes this process's share of the ticks (from the bus's iterator, so a
        failure resumes after the failing tick)."""
        owns = self.share.owns if self.share is not None else None
        self.evaluator.on_ticks(t for t in ticks if owns is None or owns(t.symbol))

    async def poll_once(self) -> int:
        """Publish each watched symbol's tick if it is new; returns how many were published."""
        if self.shared is not None:
            self._shared = await self.shared.symbols()  # cached: Redis is read about once a second
        if self.share is not None:
            await self.share.beat()
        gw = self.hub.data_gateway()
        published = 0
        for symbol in self.symbols():
            try:
                tick = await gw.tick(symbol)
            except GatewayError as exc:
                if exc.code in ("MKT-UNKNOWN-SYMBOL", "MKT-INVALID-SYMBOL", "MKT-NO-QUOTES"):
                    continue
                raise
            if tick.time_msc > self._last.get(symbol, -1):
                self._last[symbol] = tick.time_msc
                self.bus.publish(tick)
                published += 1
        self.hub.count_ticks(published)
        await self.evaluator.settle()  # what these ticks fired is committed before the next poll
        return published

    async def run(self) -> None:
        delay = self.interval
        while True:
            try:
                await self.poll_once()
                if not self.hub.connected:
                    log.info("market feed connected")
                self.hub.connected = True
                self.failures = 0
                delay = self.interval
            except GatewayError as exc:
                self.failures += 1
                if self.hub.connected or self.failures == 1:
                    log.warning("market feed: gateway down (%s); retrying with backoff", exc.code)
                self.hub.connected = False
                delay = min(max(delay * 2, 1.0), self.max_backoff)
            await asyncio.sleep(delay)
