"""Composition of the market and trading side: the hub, alert evaluator, market feed,
alert delivery, the order reconciler and the services handlers receive (``market``, ``trading``, ``alerts``).

``bot.app`` creates one per process (``create``), installs it on the
Dispatcher and the health service (``install``), starts its tasks with the
bot (``start_tasks``) and closes it (``close``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.utils.i18n import I18n
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.alerts.service import AlertEvaluator
from domain.db.terminals import SqlTerminalStore
from domain.db.trading import SqlAlertStore, SqlDemoStore, reseal_credentials
from domain.db.uow import UnitOfWork
from domain.health import HealthService, Probe
from domain.market.redis_tickbus import RedisTickBus
from domain.tiers import Quota, TierCatalog
from domain.trading.alerts import AlertService
from domain.trading.crypto import SecretBox
from domain.trading.locks import account_locks
from domain.trading.market import MarketHub
from domain.trading.pool import build_pool
from domain.trading.reconcile import Reconciler
from domain.trading.service import TradingService
from bot.notify import Notifier
from workers.alert_delivery import AlertDelivery
from workers.alert_sync import AlertFollower, PublishingEvaluator
from workers.market_feed import MarketFeed
from workers.partition import FeedShare, SharedWatch

log = logging.getLogger(__name__)


class TradingRuntime:
    def __init__(self, hub: MarketHub, sessionmaker: async_sessionmaker[AsyncSession], tiers: TierCatalog,
                 secret: bytes, *, feed_interval: float = 1.0, redis: Redis | None = None,
                 old_secrets: Sequence[bytes] = ()) -> None:  # fmt: skip
        self.hub = hub
        self.sessionmaker = sessionmaker
        self.evaluator = AlertEvaluator(SqlAlertStore(sessionmaker))
        # With Redis, ticks also go to a stream other processes (replicas, the web view) follow.
        self.stream = RedisTickBus(redis) if redis is not None else None
        # With Redis, symbols users ask about on any replica reach the feed of the worker process.
        self.watchlist = SharedWatch(redis) if redis is not None else None
        if self.watchlist is not None:
            hub.share_watch(self.watchlist.note)
        # With Redis, several worker processes split the watched symbols (and their alerts) between them.
        self.share = FeedShare(redis) if redis is not None else None
        self.feed = MarketFeed(
            hub, self.evaluator, interval=feed_interval, bus=self.stream, shared=self.watchlist, share=self.share
        )
        # With Redis, rule changes also reach the evaluator of a separate worker process (workers/alert_sync.py).
        evaluator = PublishingEvaluator(self.evaluator, redis) if redis is not None else self.evaluator
        self.alerts = AlertService(hub, evaluator)  # type: ignore[arg-type]
        self.follower = AlertFollower(redis, self.evaluator, sessionmaker) if redis is not None else None
        self.box = SecretBox(secret, *old_secrets)  # seals with SECRET_KEY, opens with it or an old one
        # One lock per trading account across processes: PostgreSQL, else Redis, else this process.
        locks = account_locks(sessionmaker.kw["bind"], redis)
        self.trading = TradingService(hub, tiers, self.box, locks=locks)
        # Orders whose outcome is unknown, settled from the terminal (the scheduler's ``reconcile`` job);
        # the app gives it the notice that tells the user (bot/views/trading.py SettlementNotice).
        self.reconciler = Reconciler(lambda: UnitOfWork(sessionmaker), self.trading)
        self.delivery: AlertDelivery | None = None
        self._outboxed = False

    @classmethod
    async def create(cls, settings: Any, sessionmaker: async_sessionmaker[AsyncSession],
                     tiers: TierCatalog, redis: Redis | None = None) -> TradingRuntime:  # fmt: skip
        secret = settings.mt5_bridge_secret.get_secret_value().encode() if settings.mt5_bridge_secret else None
        current, *old = settings.secrets()
        pool = build_pool(
            settings.mt5_backend, SqlTerminalStore(sessionmaker), host=settings.mt5_rpyc_host,
            port=settings.mt5_rpyc_port, pool=settings.mt5_rpyc_pool, paths=settings.mt5_terminal_paths,
            secret=secret, secret_key=current,
        )  # fmt: skip
        hub = MarketHub(
            backend=settings.mt5_backend, host=settings.mt5_rpyc_host, port=settings.mt5_rpyc_port, pool=pool
        )
        runtime = cls(hub, sessionmaker, tiers, current, redis=redis, old_secrets=old)
        await runtime.load()
        return runtime

    async def load(self) -> None:
        """Attach the stored demo accounts and load the live alert rules (again after a restart)."""
        await self.hub.start(SqlDemoStore(self.sessionmaker))
        await self.evaluator.load()
        resealed, unreadable = await reseal_credentials(self.sessionmaker, self.box)
        if resealed:
            log.info("re-sealed %d stored credential(s) under the current SECRET_KEY", resealed)
        if unreadable:
            log.error("%d stored credential(s) open under no configured SECRET_KEY: those users must link again",
                      unreadable)  # fmt: skip

    def install(self, dp: Dispatcher, health: HealthService) -> None:
        dp["market"] = self.hub
        dp["trading"] = self.trading
        dp["alerts"] = self.alerts
        quotas = dp.workflow_data.get("quotas")
        if quotas is not None:
            quotas.register(Quota.ALERTS, self._count_alerts)
        health.add(Probe("gateway", self.hub.probe))

    async def _count_alerts(self, user_id: int) -> int:
        async with UnitOfWork(self.sessionmaker) as uow:
            return await uow.trading.count_alerts(user_id)

    def attach(self, target: Bot | Notifier, i18n: I18n) -> AlertDelivery:
        """Deliver fired alerts through ``target`` after they are persisted (``delivery.notify``)."""
        self.delivery = AlertDelivery(target, i18n, self.sessionmaker, self.hub)
        self.evaluator.notify = self.delivery.notify
        return self.delivery

    def attach_outbox(self, i18n: I18n, wake: Callable[[], None] | None = None) -> AlertDelivery:
        """Record each firing and queue its message in one transaction (the notification outbox)."""
        self.delivery = AlertDelivery(None, i18n, self.sessionmaker, self.hub)
        self.evaluator.persist = self.delivery.persist
        self.evaluator.notify = None  # the message is queued with the firing
        if wake is not None:
            self.delivery.on_queued.append(wake)
        self._outboxed = True
        return self.delivery

    def start_tasks(
        self, bot: Bot | None, i18n: I18n, *, outbox: bool = False, wake: Callable[[], None] | None = None
    ) -> list[asyncio.Task[None]]:
        jobs: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = [("market-feed", self.feed.run)]
        if outbox:
            self.attach_outbox(i18n, wake)
            notify = None
        else:
            notify = self.attach(bot, i18n).notify if bot is not None else None
        jobs.append(("alert-evaluator", lambda: self.evaluator.run(notify)))
        if self.follower is not None:
            jobs.append(("alert-changes", self.follower.run))
        if self.stream is not None:
            self.stream.start()
        return [asyncio.create_task(job(), name=name) for name, job in jobs]

    async def close(self) -> None:
        self.evaluator.stop()
        try:
            notify = self.delivery.notify if self.delivery and not self._outboxed else None
            await self.evaluator.flush(notify)
        except Exception:
            log.exception("could not flush fired alerts at shutdown")
        if self.stream is not None:
            with contextlib.suppress(Exception):  # Redis may already be gone at shutdown
                await self.stream.aclose()
        if self.watchlist is not None:
            await self.watchlist.aclose()
        if self.share is not None:
            await self.share.leave()
        await self.hub.close()
