"""Observability: Prometheus metrics, structured JSON logs, Sentry, and the figures /status and /admin show.

Each App owns its own metrics registry (tests build many apps); ``/metrics``
serves it. Log records and Sentry events carry the update id, the hashed user
id and the tier of the update being handled, through a context variable set by
the outermost middleware. :class:`OpsMonitor` is the one source of the
operations figures: it refreshes the gauges ``/metrics`` exports and returns
the same snapshot to ``/status`` and ``/admin``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject, Update
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.errors import dna, hash_user
from domain.admin import OpsFigures, PoolFigures
from domain.db.billing import SqlBillingRepository
from domain.db.models import OutboxRow, UserRow
from domain.db.outbox import SqlOutboxRepository
from domain.health import HealthService

log = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FIGURES_MAX_AGE = 2.0  # a /status flood must not become a database flood
# Updates handled at once per process. Each holds a database connection (pool: 10 + 20 overflow) and
# Redis connections while it runs; past this a busy process only queues work it cannot do faster, and
# an unbounded pile-up exhausts the pools (errors after 30 s) instead of waiting its turn.
MAX_CONCURRENT_UPDATES = 24


class UpdateContext:
    """What every log line and Sentry event of one update carries (tier is known later, read lazily)."""

    __slots__ = ("update_id", "_user_id", "_salt", "_user", "_data")

    def __init__(self, update_id: int, user_id: int | None, salt: bytes, data: dict[str, Any]) -> None:
        self.update_id = update_id
        self._user_id = user_id
        self._salt = salt
        self._user: str | None = None
        self._data = data  # the update's middleware data: the user middleware adds the tier to it

    @property
    def user(self) -> str | None:
        """The salted hash of the user id, computed when a log line or an error first asks for it."""
        if self._user is None and self._user_id is not None:
            self._user = hash_user(self._user_id, self._salt)
        return self._user

    @property
    def tier(self) -> str | None:
        tier = self._data.get("tier")
        return getattr(tier, "code", None)

    def fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {"update_id": self.update_id, "user": self.user}
        tier = self.tier
        if tier is not None:
            out["tier"] = tier
        return out


_context: ContextVar[UpdateContext | None] = ContextVar("log_context", default=None)


def current_context() -> UpdateContext | None:
    return _context.get()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "hybrid_updates_total", "Updates handled, by command and outcome", ["command", "outcome"],
            registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "hybrid_update_seconds", "Time to handle an update, by command", ["command"],
            buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.errors = Counter("hybrid_errors_total", "Errors by ErrorDNA code", ["code"], registry=self.registry)
        self.usage_pending = Gauge("hybrid_usage_pending", "Usage events not yet written", registry=self.registry)
        self.in_flight = Gauge("hybrid_updates_in_flight", "Updates being handled now", registry=self.registry)
        self.waiting = Gauge(
            "hybrid_updates_waiting", "Updates waiting for a free handling slot (MAX_CONCURRENT_UPDATES)",
            registry=self.registry,
        )  # fmt: skip
        self.outbox_depth = Gauge(
            "hybrid_outbox_depth", "Proactive messages waiting to be sent, by outbox", ["outbox"], registry=self.registry
        )
        self.outbox_lag = Gauge(
            "hybrid_outbox_lag_seconds", "Age of the oldest waiting message, by outbox (0 when empty)", ["outbox"],
            registry=self.registry,
        )  # fmt: skip
        self.payments_waiting = Gauge(
            "hybrid_payments_waiting", "Stars payments received and not applied yet (retried)", registry=self.registry
        )
        self.tick_rate = Gauge("hybrid_tick_rate", "Ticks per second through the market feed", registry=self.registry)
        self.gateway_latency = Gauge(
            "hybrid_gateway_latency_seconds", "MT5 gateway ping (NaN while unreachable)", registry=self.registry
        )
        self.gateway_up = Gauge("hybrid_gateway_up", "1 when the MT5 gateway answers", registry=self.registry)
        self.terminals = Gauge(
            "hybrid_mt5_terminals", "MT5 terminal pool: terminals by state (size, leased, free, unhealthy)", ["state"],
            registry=self.registry,
        )  # fmt: skip
        self.terminal_refusals = Gauge(
            "hybrid_mt5_pool_refusals", "Live links this process refused because no terminal was free (since start)",
            registry=self.registry,
        )  # fmt: skip
        self.active_users = Gauge(
            "hybrid_active_users", "Users seen in the window", ["window"], registry=self.registry
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def total(self, counter: Counter) -> int:
        return int(sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total")))


class ObservabilityMiddleware(BaseMiddleware):
    """Times and counts every update, sets the log and Sentry context, and bounds concurrency (outermost)."""

    def __init__(self, metrics: Metrics, salt: bytes, limit: int = MAX_CONCURRENT_UPDATES) -> None:
        self._metrics = metrics
        self._salt = salt
        self._slots = asyncio.Semaphore(limit)
        self._series: dict[tuple[str, str], tuple[Any, Any]] = {}  # (name, outcome) -> (latency, count) children

    def _record(self, name: str, outcome: str, seconds: float) -> None:
        """Observe one update; the labelled children are looked up once per (command, outcome) per process."""
        series = self._series.get((name, outcome))
        if series is None:
            series = self._series[(name, outcome)] = (
                self._metrics.latency.labels(name), self._metrics.updates.labels(name, outcome)
            )  # fmt: skip
        series[0].observe(seconds)
        series[1].inc()

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        tg_user = data.get("event_from_user")
        context = UpdateContext(event.update_id, tg_user.id if tg_user else None, self._salt, data)
        token = _context.set(context)
        start = time.perf_counter()
        outcome = "error"
        try:
            if self._slots.locked():  # only an update that really waits for a slot is counted as waiting
                self._metrics.waiting.inc()
                try:
                    await self._slots.acquire()
                finally:
                    self._metrics.waiting.dec()
            else:
                await self._slots.acquire()  # a free slot: taken at once, without suspending
            self._metrics.in_flight.inc()
            try:
                result = await handler(event, data)
            finally:
                self._metrics.in_flight.dec()
                self._slots.release()
            outcome = "unhandled" if result is UNHANDLED else "ok"
            return result
        finally:
            command = data.get("command")
            name = command.name if command is not None else event.event_type
            self._record(name, outcome, time.perf_counter() - start)
            _context.reset(token)


# ---- logs ----


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the current update's context."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        context = _context.get()
        if context is not None:
            entry.update(context.fields())
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str, *, json_lines: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)


def wants_json(log_format: str, *, interactive: bool) -> bool:
    """LOG_FORMAT=json|text; ``auto``: plain text when a person watches a terminal, JSON lines otherwise."""
    if log_format == "auto":
        return not interactive
    return log_format == "json"


# ---- Sentry ----


def sentry_integrations() -> list[Any]:
    from sentry_sdk.integrations.aiohttp import AioHttpIntegration
    from sentry_sdk.integrations.asyncio import AsyncioIntegration
    from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration

    return [AioHttpIntegration(), AsyncioIntegration(), SqlalchemyIntegration()]


def init_sentry(dsn: str, *, release: str, transport: Any = None) -> None:
    """Sentry with the aiohttp, asyncio and SQLAlchemy integrations; no personal data leaves the process

    (default PII off, no frame locals; users are known by their salted hash only).
    """
    import sentry_sdk  # loaded only where SENTRY_DSN is set (bot/errors.py sends only once it is)

    options: dict[str, Any] = {"transport": transport} if transport is not None else {}
    sentry_sdk.init(
        dsn=dsn,
        release=release,
        traces_sample_rate=0.0,
        include_local_variables=False,  # frame locals hold Telegram ids, names and message texts
        integrations=sentry_integrations(),
        before_send=tag_event,
        before_breadcrumb=scrub_breadcrumb,
        **options,
    )


# Bot API URLs carry the bot token in their path (``/bot<id>:<secret>/sendMessage``, ``/file/bot<id>:<secret>/``).
_BOT_TOKEN = re.compile(r"(/bot\d+):[A-Za-z0-9_-]+")


def without_bot_token(text: str) -> str:
    return _BOT_TOKEN.sub(r"\1:[token]", text)


def scrub_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any] | None:
    """Redis keys name users (FSM keys, rate-limit buckets): keep the command, drop the key. HTTP breadcrumbs
    (every Bot API call) lose the bot token from their URL."""
    if crumb.get("category") == "redis":
        crumb["message"] = str(crumb.get("message") or "").split(" ", 1)[0]
        crumb["data"] = {}
    data = crumb.get("data")
    if isinstance(data, dict) and isinstance(data.get("url"), str):
        data["url"] = without_bot_token(data["url"])
    if isinstance(crumb.get("message"), str):
        crumb["message"] = without_bot_token(crumb["message"])
    return crumb


_SECRET_HEADER_WORDS = ("secret", "token", "signature", "auth", "cookie", "key")


def without_secret_headers(event: dict[str, Any]) -> None:
    """Request headers that carry credentials (Telegram's X-Telegram-Bot-Api-Secret-Token, Stripe-Signature,
    Authorization) are filtered from a web request's event; Sentry's own list misses the first two."""
    request = event.get("request")
    headers = request.get("headers") if isinstance(request, dict) else None
    if isinstance(headers, dict):
        for name in headers:
            if any(word in name.lower() for word in _SECRET_HEADER_WORDS):
                headers[name] = "[Filtered]"
    if isinstance(request, dict) and isinstance(request.get("url"), str):
        request["url"] = without_bot_token(request["url"])


def tag_event(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Tags every event with the hashed user, their tier, the update id and the ErrorDNA code; filters
    credentials from web request headers."""
    without_secret_headers(event)
    tags = event.setdefault("tags", {})
    context = _context.get()
    if context is not None:
        tags.setdefault("update_id", str(context.update_id))
        if context.user is not None:
            tags.setdefault("user_hash", context.user)
            event["user"] = {"id": context.user}
        if context.tier is not None:
            tags.setdefault("tier", context.tier)
    exc_info = hint.get("exc_info")
    if exc_info and exc_info[1] is not None:
        tags.setdefault("error_dna", dna(exc_info[1]))
    return event


# ---- the figures /metrics, /status and /admin share ----

OutboxProbe = Callable[[AsyncSession], Awaitable[tuple[int, datetime | None]]]


async def broadcast_outbox(session: AsyncSession) -> tuple[int, datetime | None]:
    """Depth (pending + claimed) and the oldest pending row's enqueue time of the broadcast outbox."""
    waiting = OutboxRow.status.in_(("pending", "claimed"))
    depth, oldest = (
        await session.execute(
            select(func.count(), func.min(OutboxRow.updated_at)).select_from(OutboxRow).where(waiting)
        )
    ).one()
    return int(depth or 0), oldest


async def notification_outbox(session: AsyncSession) -> tuple[int, datetime | None]:
    """Depth and the oldest waiting message of the notification outbox (alerts, signals, digests...)."""
    depth = await SqlOutboxRepository(session).depth()
    return depth.waiting, depth.oldest


class OpsMonitor:
    """Collects the operations figures at most every ``max_age`` seconds and mirrors them into the gauges."""

    def __init__(
        self,
        metrics: Metrics,
        sessionmaker: async_sessionmaker[AsyncSession],
        health: HealthService,
        tick_rate: Callable[[], float],
        *,
        max_age: float = FIGURES_MAX_AGE,
        terminals: Callable[[], Awaitable[PoolFigures | None]] | None = None,
    ) -> None:
        self._metrics = metrics
        self._sessionmaker = sessionmaker
        self._health = health
        self._tick_rate = tick_rate
        self._terminals = terminals
        self._pool: PoolFigures | None = None  # last good pool figures
        self._max_age = max_age
        self._outboxes: dict[str, OutboxProbe] = {"notifications": notification_outbox, "broadcast": broadcast_outbox}
        self._last: tuple[float, OpsFigures] | None = None
        self._stored: tuple[int, float | None, int, int, int, float | None] = (0, None, 0, 0, 0, None)  # last good
        self._lock = asyncio.Lock()

    def add_outbox(self, name: str, probe: OutboxProbe) -> None:
        """Another persisted outbox to count (depth, oldest waiting)."""
        self._outboxes[name] = probe
        self._last = None

    async def figures(self) -> OpsFigures:
        async with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last[0] < self._max_age:
                return self._last[1]
            figures = await self._collect()
            self._last = (now, figures)
            return figures

    async def _collect(self) -> OpsFigures:
        m = self._metrics
        probes = {p.name: p for p in await self._health.check()}
        gateway = probes.get("gateway")
        gateway_ms = gateway.latency_ms if gateway is not None and gateway.ok else None
        try:
            self._stored = await self._from_database()
        except Exception:  # the database may be down: keep the last figures, /metrics still answers
            log.warning("ops figures: database unavailable, keeping the last ones", exc_info=True)
        if self._terminals is not None:
            try:
                self._pool = await self._terminals()
            except Exception:
                log.warning("ops figures: terminal pool unavailable, keeping the last ones", exc_info=True)
        depth, lag, active_1h, active_24h, payments, payments_age = self._stored
        figures = OpsFigures(
            updates=m.total(m.updates),
            errors=m.total(m.errors),
            outbox_depth=depth,
            outbox_lag_s=lag,
            tick_rate=float(self._tick_rate()),
            gateway_ms=gateway_ms,
            active_1h=active_1h,
            active_24h=active_24h,
            terminals=self._pool,
            payments_waiting=payments,
            payments_oldest_s=payments_age,
        )
        if self._pool is not None:
            for state in ("size", "leased", "free", "unhealthy"):
                m.terminals.labels(state).set(getattr(self._pool, state))
            m.terminal_refusals.set(self._pool.refused)
        m.tick_rate.set(figures.tick_rate)
        m.gateway_up.set(1 if gateway_ms is not None else 0)
        m.gateway_latency.set(gateway_ms / 1000 if gateway_ms is not None else float("nan"))
        m.active_users.labels("1h").set(active_1h)
        m.active_users.labels("24h").set(active_24h)
        m.payments_waiting.set(payments)
        return figures

    async def _from_database(self) -> tuple[int, float | None, int, int, int, float | None]:
        now = datetime.now(UTC)
        depth, lag = 0, None
        async with self._sessionmaker() as session:
            for name, probe in self._outboxes.items():
                n, oldest = await probe(session)
                age = max(0.0, (now - oldest).total_seconds()) if oldest is not None and n else None
                self._metrics.outbox_depth.labels(name).set(n)
                self._metrics.outbox_lag.labels(name).set(age or 0.0)
                depth += n
                lag = age if lag is None or (age is not None and age > lag) else lag
            seen = UserRow.last_seen_at
            active_1h, active_24h = (
                await session.execute(
                    select(
                        func.count().filter(seen >= now - timedelta(hours=1)),
                        func.count().filter(seen >= now - timedelta(hours=24)),
                    ).select_from(UserRow)
                )
            ).one()
            inbox = await SqlBillingRepository(session).inbox_figures()
        payments_age = max(0.0, (now - inbox.oldest).total_seconds()) if inbox.oldest is not None else None
        return depth, lag, int(active_1h or 0), int(active_24h or 0), inbox.pending, payments_age
