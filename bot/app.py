"""The app factory: builds every long-lived component once and wires the Dispatcher.

``create_app`` is the composition root shared by ``run``, ``console``, the tests
and the benchmarks. It holds no global state: call it as often as you like.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder
from aiogram.fsm.storage.memory import MemoryStorage
from aiogram.fsm.storage.redis import RedisEventIsolation, RedisStorage
from aiogram.utils.i18n import I18n
from aiogram_dialog import setup_dialogs
from aiogram_dialog.api.protocols import BgManagerFactory
from redis.asyncio import BlockingConnectionPool, Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot import migrate, outgoing
from bot.errors import ErrorReporter
from bot.i18n import LocaleMiddleware, create_i18n
from bot.middlewares.compliance import ComplianceGateMiddleware, DisclosureReplay
from bot.middlewares.database import UnitOfWorkMiddleware
from bot.middlewares.dedup import DeduplicateMiddleware
from bot.middlewares.errors import ErrorMiddleware
from bot.middlewares.fsm import StateMiddleware
from bot.middlewares.metering import MeteringMiddleware
from bot.middlewares.payments import PaymentInboxMiddleware
from bot.middlewares.private import PrivateChatMiddleware
from bot.middlewares.ratelimit import RateLimitMiddleware
from bot.middlewares.secret_input import SecretInputMiddleware
from bot.middlewares.tiers import TierGateMiddleware
from bot.middlewares.users import UserMiddleware
from bot.notify import Notifier, OutboxNotifier
from bot.observability import Metrics, ObservabilityMiddleware, OpsMonitor, init_sentry
from bot.registry import Registry
from bot.settings import Settings
from bot.views.billing import NoticeOutbox
from bot.views.trading import AutoTradeReporter, SettlementNotice
from bot.web.pay import card_page
from dialogs.common import StaleDialogMiddleware, is_dialog_button
from domain.admin import AdminService
from domain.agents.service import AgentService
from domain.analytics.service import AnalyticsService
from domain.billing.service import BillingService
from domain.billing.storefront import Storefront
from domain.broadcast import BroadcastService
from domain.compliance import ComplianceService
from domain.db.engine import backend_name, create_engine, create_sessionmaker
from domain.db.outbox import notification_outbox
from domain.db.repositories import load_tiers
from domain.db.uow import SqlUsageStore, UnitOfWork
from domain.dedup import MemoryUpdateLedger, RedisUpdateLedger, UpdateLedger
from domain.health import HealthService, Probe
from domain.metering import FLUSH_EVERY, Meter
from domain.outbox import Pacing
from domain.quotas import QuotaService
from domain.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from domain.referrals import ReferralService
from domain.support.feedback import FeedbackService
from domain.support.tickets import SupportService
from domain.tiers import TierCatalog
from domain.trading.autotrade import AutoTrader
from domain.users import UserService
from handlers import default_registry, dialog_router, last_routers
from handlers.filters import dialog_gate, install_prefilters
from workers.agent_runner import AgentRunner
from workers.broadcast import BroadcastSender, Pacer
from workers.dashboard_refresh import DashboardRefresher
from workers.equity_recorder import EquityRecorder
from workers.outbox import OutboxSender, Pacers
from workers.partition import AgentJobs
from workers.scheduler import Scheduler, default_jobs
from workers.trading_runtime import TradingRuntime
from workers.user_sync import UserCacheSync

if TYPE_CHECKING:
    from domain.billing.stripe import StripeGateway

log = logging.getLogger(__name__)


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
    storefront: Storefront = field(default_factory=Storefront)  # what this bot sells and how (handler param)
    market: TradingRuntime = field(init=False)
    analytics: AnalyticsService = field(init=False)  # performance analytics and dashboards
    dialogs: BgManagerFactory = field(init=False)  # aiogram-dialog background managers (setup_dialogs)
    dashboards: DashboardRefresher = field(init=False)  # refreshes open /analytics dashboards
    agents: AgentService = field(init=False)  # AI agents: handler param `agents`
    agent_runner: AgentRunner = field(init=False)  # votes, signals, learning on each bar close
    autotrader: AutoTrader = field(init=False)  # auto-trading from consensus: handler param `autotrade`
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    notifier: Notifier | None = None  # the notification outbox (bot/notify.py OutboxNotifier), set by create_app
    outbox: OutboxSender | None = None  # its sender, started by start_background when there is a bot
    scheduler: Scheduler | None = None  # periodic jobs behind the leader lease (workers/scheduler.py)
    ops: OpsMonitor = field(init=False)  # the figures /metrics, /status and /admin share
    user_sync: UserCacheSync | None = None  # with Redis: profile changes reach every process's cache
    replays: DisclosureReplay = field(init=False)  # commands the disclosure blocked, run once it is accepted

    def start_background(self, bot: Bot | None = None, *, workers: bool | None = None) -> None:
        """Background tasks. ``workers`` (default: unless WORKERS=external) adds the workers: market feed,
        alert evaluator, agent runner, scheduler and — with a bot to send with — the outbox and broadcast
        senders. Without them (a bot replica beside ``python -m bot worker``) proactive messages are only
        queued in the outbox; the worker delivers them."""
        self.tasks.append(asyncio.create_task(self._flush_usage(), name="usage-flush"))
        if self.user_sync is not None:
            self.tasks.append(asyncio.create_task(self.user_sync.run(), name="user-changes"))
        if bot is not None:  # open dashboards live in this process's dispatcher
            self.tasks.append(asyncio.create_task(self.dashboards.run(bot), name="dashboard-refresh"))
        if workers is None:
            workers = self.settings.workers == "internal"
        if not workers:
            return
        self.tasks += self.market.start_tasks(bot, self.i18n, outbox=True, wake=self.wake_outbox)
        self.tasks.append(asyncio.create_task(self.agent_runner.run_forever(), name="agent-runner"))
        recorder = EquityRecorder(self.sessionmaker, self.analytics, self.tiers)  # hourly, idempotent per hour
        self.tasks.append(asyncio.create_task(recorder.run_forever(), name="equity-recorder"))
        self.scheduler = Scheduler(self.redis, default_jobs(self))
        self.tasks.append(asyncio.create_task(self.scheduler.run_forever(), name="scheduler"))
        if bot is not None:  # the senders need the bot; without one, messages wait in the outbox
            pacer = Pacer(self.settings.outbox_rate)  # one global rate for both senders of this process
            self.outbox = OutboxSender(self.sessionmaker, bot, self.pacing(), pacer=pacer)
            self.tasks.append(asyncio.create_task(self.outbox.run_forever(), name="outbox-sender"))
            broadcast = Pacers(Pacer(self.settings.broadcast_rate), pacer)
            sender = BroadcastSender(self.sessionmaker, bot, self.i18n, pacer=broadcast)  # type: ignore[arg-type]
            self.tasks.append(asyncio.create_task(sender.run_forever(), name="broadcast-sender"))

    def pacing(self) -> Pacing:
        s = self.settings
        return Pacing(s.outbox_rate, s.outbox_chat_interval, s.outbox_group_per_minute, s.outbox_max_attempts)

    def wake_outbox(self) -> None:
        if self.outbox is not None:
            self.outbox.wake()

    async def drain_outbox(self, bot: Bot) -> int:
        """Send every due outbox message now, unpaced (tests, the console); returns how many were handled."""
        return await OutboxSender(self.sessionmaker, bot, self.pacing()).drain()

    async def _flush_usage(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_EVERY)
            await self.meter.flush()
            self.metrics.usage_pending.set(self.meter.pending)

    async def close(self) -> None:
        await self.replays.settle()
        if self.outbox is not None:  # let the message in flight be acknowledged first
            await self.outbox.stop()
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
    redis = _redis(settings.redis_url) if settings.redis_url else None
    # FSM storage gets its own client: aiogram closes the storage when polling stops, and the workers
    # sharing ``redis`` must keep their connections until App.close.
    storage: BaseStorage = (
        RedisStorage(_redis(settings.redis_url), key_builder=DefaultKeyBuilder(with_bot_id=True, with_destiny=True))
        if settings.redis_url
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
    # The disclosure gate's cache goes with the profile (here and, through user_sync, in every process);
    # a consent change (an erasure above all) is published like a profile change.
    users.on_drop.append(app.compliance.forget)
    app.compliance.on_change.append(users.forget)
    app.user_sync = UserCacheSync(redis, users) if redis is not None else None
    current, *old_secrets = settings.secrets()
    app.billing = BillingService(
        tiers, users, current, unit=lambda: UnitOfWork(sessionmaker), stripe=_stripe(settings), old_secrets=old_secrets
    )
    app.storefront = Storefront(card_on_web=settings.consumer_card_checkout == "web", web_url=settings.web_public_url)
    app.market = await TradingRuntime.create(settings, sessionmaker, tiers, redis)
    app.notifier = notifier = OutboxNotifier(sessionmaker)  # every proactive message goes through the outbox
    notifier.on_queued.append(app.wake_outbox)
    app.billing.announce = NoticeOutbox(lambda: app.notifier, i18n)  # billing notices in their change's transaction
    app.market.reconciler.announce = SettlementNotice(i18n, lambda: app.notifier)  # in the settling transaction
    app.ops = OpsMonitor(
        app.metrics, sessionmaker, health, lambda: app.market.hub.tick_rate, terminals=app.market.hub.pool_figures
    )
    app.analytics = AnalyticsService(app.market.trading, app.market.hub)
    app.agents = AgentService(app.market.hub, tiers, meter)
    jobs = AgentJobs(redis) if redis is not None else None  # workers split each pass's jobs (workers/partition.py)
    app.agent_runner = AgentRunner(app.agents, sessionmaker, tiers, i18n, lambda: app.notifier, partition=jobs)
    app.autotrader = AutoTrader(lambda: UnitOfWork(sessionmaker), app.market.trading, users, tiers, agents=app.agents,
                                reporter=AutoTradeReporter(i18n, lambda: app.notifier),
                                timeframes=app.agent_runner.timeframes)  # fmt: skip
    app.agent_runner.add_listener(app.autotrader.listen)  # orders from each closed bar's consensus
    app.agent_runner.add_symbols(app.autotrader.watched_symbols)
    ledger = RedisUpdateLedger(redis) if redis is not None else MemoryUpdateLedger()
    reporter = ErrorReporter(sessionmaker, settings.secret(), app.metrics.errors)
    app.dispatcher = _dispatcher(app, limiter, ledger, reporter)
    app.dashboards = DashboardRefresher(sessionmaker, app.analytics, users, app.dialogs)
    app.dispatcher["dashboards"] = app.dashboards
    app.market.install(app.dispatcher, health)
    app.agent_runner.install(app.dispatcher)  # watchlist quota counter
    health.add(Probe("workers", lambda: _workers(app)))
    app.ops.add_outbox("notifications", notification_outbox)  # depth and lag on /metrics, /status, /admin
    return app


def _dispatcher(app: App, limiter: RateLimiter, ledger: UpdateLedger, reporter: ErrorReporter) -> Dispatcher:
    app.replays = DisclosureReplay(app.storage)
    dp = Dispatcher(
        disable_fsm=True,  # registered below, inside the error layer: a Redis outage gets a localized answer
        ops=app.ops,
        storage=app.storage,
        settings=app.settings,
        tiers=app.tiers,
        registry=app.registry,
        users=app.users,
        referrals=ReferralService(app.users),
        billing=app.billing,
        storefront=app.storefront,
        card_page=card_page(app),  # None unless consumers may pay by card on the web page
        meter=app.meter,
        quotas=QuotaService(app.meter),
        health=app.health,
        support=SupportService(),
        broadcasts=BroadcastService(),
        feedback=FeedbackService(),
        compliance=app.compliance,
        notifier=app.notifier,
        admin=AdminService(app.users, app.tiers, app.billing, ops=app.ops),
        analytics=app.analytics,
        agents=app.agents,
        autotrade=app.autotrader,
        replays=app.replays,
    )
    dialogs = dialog_router()  # only events no command router took meet aiogram-dialog's middlewares
    routers = app.registry.routers()
    install_prefilters(routers)  # per process: plain text and foreign buttons skip a command router in one check
    dp.include_routers(*routers, dialog_gate(dialogs, is_dialog_button), *last_routers())  # what it cannot own skips aiogram-dialog
    dp.callback_query.outer_middleware(StaleDialogMiddleware())  # wraps aiogram-dialog's intent middleware
    isolation = (
        RedisEventIsolation(app.redis, key_builder=DefaultKeyBuilder(with_bot_id=True, with_destiny=True))
        if app.redis is not None
        else None
    )  # aiogram-dialog locks per destiny: the key builder must know destinies
    app.dialogs = setup_dialogs(dialogs, events_isolation=isolation)
    # aiogram's FSM middleware, able to take the state the de-duplication claim read in its round trip
    dp.fsm = state = StateMiddleware(dp.fsm.storage, dp.fsm.events_isolation, dp.fsm.strategy)
    # On one Redis the limiter's bucket is hit in the de-duplication claim's script (bot/middlewares/dedup.py)
    shared = isinstance(limiter, RedisRateLimiter) and isinstance(ledger, RedisUpdateLedger) and limiter.redis is ledger.redis
    ratelimit = RateLimitMiddleware(limiter, app.users if shared else None)
    # Outermost first: errors wrap everything; a duplicate delivery stops before
    # any work; the user is known before locale, limits and gates; metering sees
    # only what was actually handled.
    for middleware in (
        ObservabilityMiddleware(app.metrics, app.settings.secret()),
        PaymentInboxMiddleware(app.billing, app.i18n),  # outside the error layer: a payment is stored first
        ErrorMiddleware(reporter, app.i18n, app.registry),
        DeduplicateMiddleware(ledger, state.state_key, ratelimit.bucket),
        state,  # FSM state (Redis with REDIS_URL), after de-duplication and inside the error layer
        SecretInputMiddleware(app.i18n),  # a password typed at a secret step leaves the chat before anything runs
        UnitOfWorkMiddleware(app.sessionmaker),
        UserMiddleware(app.users),
        LocaleMiddleware(app.i18n),
        ratelimit,
        PrivateChatMiddleware(app.registry),  # account and money commands never answer in a group
        TierGateMiddleware(app.registry, app.tiers),
        ComplianceGateMiddleware(app.compliance, app.replays),
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
    head = migrate.head(settings.db_url)
    if settings.embedded_db:
        settings.ensure_data_dir()
        if await migrate.current(engine) != head:  # alembic loads only when there is something to do
            await migrate.upgrade_async(settings.db_url)
        return
    if (current := await migrate.current(engine)) != head:
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
    from domain.billing.stripe import StripeGateway  # the SDK loads only where Stripe is configured
    prices = {
        "basic": settings.stripe_price_basic or "",
        "pro": settings.stripe_price_pro or "",
        "enterprise": settings.stripe_price_enterprise or "",
    }
    return StripeGateway(settings.stripe_secret_key.get_secret_value(), prices, api_base=settings.stripe_api_base)


REDIS_CONNECTIONS = 100  # per process; a burst of concurrent updates waits for one instead of failing
REDIS_WAIT = 5.0  # seconds an update waits for a free Redis connection before SYS-REDIS


def _redis(url: str) -> Redis:
    return Redis.from_pool(BlockingConnectionPool.from_url(url, max_connections=REDIS_CONNECTIONS, timeout=REDIS_WAIT))


def _init_sentry(settings: Settings) -> None:
    if settings.sentry_dsn is not None:
        from bot import __version__

        init_sentry(settings.sentry_dsn.get_secret_value(), release=f"hybrid-trader@{__version__}")
