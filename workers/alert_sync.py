"""Alert rule changes from the bot process reach the worker's evaluator (WORKERS=external).

``/alerts add`` (and pause, resume, delete) commits the rule, then updates the
in-process evaluator through :class:`PublishingEvaluator`, which also
publishes ``{"op": ..., "id": ...}`` on the Redis channel ``alerts:changes``.
Every process that evaluates alerts follows the channel (:class:`AlertFollower`)
and re-reads the rule from the database — the message carries only the id, the
committed row is the truth. Pub/sub is fire-and-forget, so a follower that
(re)subscribes reloads every live rule first: a change made while it was
disconnected is never missed. Applying a change twice is harmless (a firing is
recorded once by a conditional UPDATE, whichever process sees the tick).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.alerts.models import AlertRule, AlertStatus
from domain.alerts.service import AlertEvaluator
from domain.db.trading import SqlTradingRepository
from workers.pubsub import Publisher, follow

log = logging.getLogger(__name__)

CHANNEL = "alerts:changes"


class PublishingEvaluator:
    """What ``AlertService`` holds with Redis: the local evaluator, plus a change notice to other processes."""

    def __init__(self, evaluator: AlertEvaluator, redis: Redis) -> None:
        self._evaluator = evaluator
        self._out = Publisher(redis, CHANNEL)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._evaluator, name)

    def _publish(self, op: str, alert_id: int) -> None:
        self._out.publish(json.dumps({"op": op, "id": alert_id}))  # followers reload every rule on reconnect

    async def published(self) -> None:
        """Wait until every change so far went out (tests, shutdown)."""
        await self._out.published()

    def add(self, rule: AlertRule) -> None:
        self._evaluator.add(rule)
        self._publish("add", rule.id)

    def remove(self, alert_id: int) -> AlertRule | None:
        removed = self._evaluator.remove(alert_id)
        self._publish("remove", alert_id)
        return removed

    def pause(self, alert_id: int) -> bool:
        done = self._evaluator.pause(alert_id)
        self._publish("pause", alert_id)
        return done

    def resume(self, alert_id: int) -> bool:
        done = self._evaluator.resume(alert_id)
        self._publish("resume", alert_id)
        return done


class AlertFollower:
    """Applies published rule changes to this process's evaluator."""

    def __init__(self, redis: Redis, evaluator: AlertEvaluator, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._redis = redis
        self._evaluator = evaluator
        self._sessionmaker = sessionmaker
        self.applied = 0
        self.subscribed = asyncio.Event()

    async def run(self, retry: float = 1.0, max_retry: float = 30.0) -> None:
        """Follow the channel; after a re-subscription read every live rule again (changes were missed)."""
        await follow(self._redis, CHANNEL, self.apply, self._evaluator.load, subscribed=self.subscribed,
                     retry=retry, max_retry=max_retry)  # fmt: skip

    async def apply(self, raw: bytes | str) -> None:
        try:
            change = json.loads(raw)
            op, alert_id = str(change["op"]), int(change["id"])
        except (ValueError, KeyError, TypeError):
            log.warning("alert changes: ignoring a malformed message")
            return
        evaluator = self._evaluator
        if op == "remove":
            evaluator.remove(alert_id)
        else:
            async with self._sessionmaker() as session:
                rule = await SqlTradingRepository(session).alert(alert_id)
            if rule is None or rule.status is AlertStatus.TRIGGERED:
                evaluator.remove(alert_id)
            else:
                if alert_id not in evaluator.index:
                    evaluator.add(rule)
                (evaluator.pause if rule.status is AlertStatus.PAUSED else evaluator.resume)(alert_id)
        self.applied += 1
