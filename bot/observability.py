"""Observability: Prometheus metrics, structured JSON logs, and the middleware feeding both.

Each App owns its own metrics registry (tests build many apps); ``/metrics``
serves it. Log records carry the update id and the hashed user id of the
update being handled, through a context variable set by the middleware.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject, Update
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.errors import hash_user

_context: ContextVar[dict[str, Any] | None] = ContextVar("log_context", default=None)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


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

    def render(self) -> bytes:
        return generate_latest(self.registry)


class ObservabilityMiddleware(BaseMiddleware):
    """Times and counts every update and sets the log context (outermost)."""

    def __init__(self, metrics: Metrics, salt: bytes) -> None:
        self._metrics = metrics
        self._salt = salt

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        tg_user = data.get("event_from_user")
        token = _context.set({"update_id": event.update_id, "user": hash_user(tg_user.id if tg_user else None, self._salt)})
        start = time.perf_counter()
        outcome = "error"
        try:
            result = await handler(event, data)
            outcome = "unhandled" if result is UNHANDLED else "ok"
            return result
        finally:
            command = data.get("command")
            name = command.name if command is not None else event.event_type
            self._metrics.latency.labels(name).observe(time.perf_counter() - start)
            self._metrics.updates.labels(name, outcome).inc()
            _context.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the current update's context."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(_context.get() or {})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str, *, json_lines: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    for noisy in ("alembic", "aiogram.event"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
