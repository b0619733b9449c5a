"""The app factory: builds every long-lived component once and wires the Dispatcher.

``create_app`` is the composition root shared by ``run``, ``console``, the tests
and the benchmarks. It holds no global state: call it as often as you like.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import sentry_sdk
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.utils.i18n import I18n
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import migrate, outgoing
from bot.errors import ErrorReporter
from bot.i18n import LocaleMiddleware, create_i18n
from bot.middlewares.database import UnitOfWorkMiddleware
from bot.middlewares.dedup import DeduplicateMiddleware
from bot.middlewares.errors import ErrorMiddleware
from bot.middlewares.metering import MeteringMiddleware
from bot.middlewares.compliance import ComplianceGateMiddleware
from bot.middlewares.ratelimit import RateLimitMiddleware
from bot.middlewares.tiers import TierGateMiddleware
from bot.middlewares.users import UserMiddleware
from bot.observability import Metrics, ObservabilityMiddleware
from bot.registry import Registry
from bot.settings import Settings
from bot.views.billing import deliver as deliver_notices
from domain.billing.service import BillingService
from domain.billing.stripe import StripeGateway
from domain.admin import AdminService
from domain.broadcast import BroadcastService
from domain.compliance import ComplianceService
from domain.db.engine import backend_name, create_engine, create_sessionmaker
from domain.db.repositories import load_tiers
from domain.db.uow import SqlUsageStore, UnitOfWork
from domain.dedup import MemoryUpdateLedger, RedisUpdateLedger, UpdateLedger
from domain.health import HealthService, Probe
from domain.metering import FLUSH_EVERY, Meter
from domain.quotas import QuotaService
from domain.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from domain.referrals import ReferralService
from domain.support.feedback import FeedbackService
from domain.support.tickets import SupportService
from domain.tiers import TierCatalog
from domain.users import UserService
from handlers import default_registry, last_routers
from workers.broadcast import BroadcastSender
from workers.trading_runtime import TradingRuntime

log = logging.getLogger(__name__)
BILLING_JOBS_EVERY = 60.0


@dataclass
class App:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    redis: Redis | None
    storage: BaseStorage
    i18n: I18n
    tiers: TierCatalog
    registry: Registry
    users: UserService
    meter: Meter
    health: HealthService
    metrics: Metrics = field(default_factory=Metrics)
    compliance: ComplianceService = field(default_factory=ComplianceService)  # support (0004): shared with the gate
    dispatcher: Dispatcher = field(init=False)
    billing: BillingService = field(init=False)
    market: TradingRuntime = field(init=False)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start_background(self, bot: Bot | None = None) -> None:
        self.tasks.append(asyncio.create_task(self._flush_usage(), name="usage-flush"))
        self.tasks += self.market.start_tasks(bot, self.i18n)  # market feed, alert evaluator (+ delivery)
        if bot is not None:  # billing jobs and broadcasts tell users what happened, so they need the bot
            self.tasks.append(asyncio.create_task(self._billing_jobs(bot), name="billing-jobs"))
            sender = BroadcastSender(self.sessionmaker, bot, self.i18n, rate=self.settings.broadcast_rate)
            self.tasks.append(asyncio.create_task(sender.run_forever(), name="broadcast-sender"))

    async def _billing_jobs(self, bot: Bot) -> None:
        while True:
            try:
                await deliver_notices(bot, self.i18n, await self.billing.run_due_jobs())
                await self.billing.report_overage()
            except Exception:
                log.exception("billing jobs failed; retrying next round")
            await asyncio.sleep(BILLING_JOBS_EVERY)

    async def _flush_usage(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await self.meter.flush()
            self.metrics.usage_pending.set(self.meter.pending)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()
        await self.meter.flush()
        await self.market.close()
        if self.billing.stripe is not None:
            await self.billing.stripe.close()
        await self.storage.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()


async def create_app(
    settings: Settings, *, registry: Registry | None = None, limiter: RateLimiter | None = None
) -> App:
    _init_sentry(settings)
    engine = create_engine(settings.db_url)
    await _prepare_database(settings, engine)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session:
        tiers = TierCatalog(await load_tiers(session))
    redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    storage: BaseStorage = (
        RedisStorage(redis, key_builder=DefaultKeyBuilder(with_bot_id=True, with_destiny=True))
        if redis is not None
        else MemoryStorage()
    )
    if limiter is None:
        limiter = RedisRateLimiter(redis) if redis is not None else MemoryRateLimiter()
    registry = registry or default_registry()
    i18n = create_i18n()
    users = UserService(tiers, admin_ids=settings.admin_ids, support_ids=settings.support_ids)
    meter = Meter(SqlUsageStore(sessionmaker))
    health = HealthService(_probes(engine, redis))
    app = App(settings, engine, sessionmaker, redis, storage, i18n, tiers, registry, users, meter, health)
    app.billing = BillingService(
        tiers, users, settings.secret(), unit=lambda: UnitOfWork(sessionmaker), stripe=_stripe(settings)
    )
    app.market = await TradingRuntime.create(settings, sessionmaker, tiers, redis)
    ledger = RedisUpdateLedger(redis) if redis is not None else MemoryUpdateLedger()
    reporter = ErrorReporter(sessionmaker, settings.secret(), app.metrics.errors)
    app.dispatcher = _dispatcher(app, limiter, ledger, reporter)
    app.market.install(app.dispatcher, health)
    health.add(Probe("workers", lambda: _workers(app)))
    return app


def _dispatcher(app: App, limiter: RateLimiter, ledger: UpdateLedger, reporter: ErrorReporter) -> Dispatcher:
    dp = Dispatcher(
        storage=app.storage,
        settings=app.settings,
        tiers=app.tiers,
        registry=app.registry,
        users=app.users,
        referrals=ReferralService(app.users),
        billing=app.billing,
        meter=app.meter,
        quotas=QuotaService(app.meter),
        health=app.health,
        support=SupportService(),
        broadcasts=BroadcastService(),
        feedback=FeedbackService(),
        compliance=app.compliance,
        admin=AdminService(app.users, app.tiers, app.billing),
    )
    dp.include_routers(*app.registry.routers(), *last_routers())
    # Outermost first: errors wrap everything; a duplicate delivery stops before
    # any work; the user is known before locale, limits and gates; metering sees
    # only what was actually handled.
    for middleware in (
        ObservabilityMiddleware(app.metrics, app.settings.secret()),
        ErrorMiddleware(reporter, app.i18n),
        DeduplicateMiddleware(ledger),
        UnitOfWorkMiddleware(app.sessionmaker),
        UserMiddleware(app.users),
        LocaleMiddleware(app.i18n),
        RateLimitMiddleware(limiter),
        TierGateMiddleware(app.registry, app.tiers),
        ComplianceGateMiddleware(app.registry, app.compliance),
        MeteringMiddleware(app.meter),
    ):
        dp.update.outer_middleware(middleware)
    return dp


def create_bot(settings: Settings, session: BaseSession | None = None, token: str | None = None) -> Bot:
    if session is None:
        api = TelegramAPIServer.from_base(settings.telegram_api_url) if settings.telegram_api_url else None
        session = AiohttpSession(api=api) if api is not None else AiohttpSession()
    secret = token or (settings.bot_token.get_secret_value() if settings.bot_token else "")
    bot = Bot(secret, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    outgoing.install(bot)
    return bot


async def _prepare_database(settings: Settings, engine: AsyncEngine) -> None:
    if settings.embedded_db:
        settings.ensure_data_dir()
        await migrate.upgrade_async(settings.db_url)
        return
    current, head = await migrate.current(engine), migrate.head(settings.db_url)
    if current != head:
        await engine.dispose()
        raise SystemExit(f"database is at revision {current}, this build needs {head}: run `python -m bot migrate`")


def _probes(engine: AsyncEngine, redis: Redis | None) -> list[Probe]:
    async def database() -> str:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return backend_name(engine)

    async def redis_ping() -> str:
        if redis is None:
            return "memory"
        await redis.ping()
        return "Redis"

    return [Probe("database", database), Probe("redis", redis_ping)]


async def _workers(app: App) -> str:
    running = [t.get_name() for t in app.tasks if not t.done()]
    dead = [t.get_name() for t in app.tasks if t.done()]
    if dead:
        raise RuntimeError("stopped: " + ", ".join(dead))
    return ", ".join(running) if running else "none"


def _stripe(settings: Settings) -> StripeGateway | None:
    if settings.stripe_secret_key is None:
        return None
    prices = {
        "basic": settings.stripe_price_basic or "",
        "pro": settings.stripe_price_pro or "",
        "enterprise": settings.stripe_price_enterprise or "",
    }
    return StripeGateway(settings.stripe_secret_key.get_secret_value(), prices, api_base=settings.stripe_api_base)


def _init_sentry(settings: Settings) -> None:
    if settings.sentry_dsn is not None:
        sentry_sdk.init(dsn=settings.sentry_dsn.get_secret_value(), send_default_pii=False, traces_sample_rate=0.0)
