"""The notification outbox: every proactive message (one a user did not just ask for) is a row first.

Producers (alert delivery, billing notices, ticket replies, digests, signals,
auto-trading reports…) render the message in the user's language and store it
with a de-duplication ``key`` (UNIQUE: a second message with the same key is
dropped). A sender (workers/outbox.py) delivers the rows, paced under
Telegram's limits.

Row life cycle::

    pending ──claim──▶ sending ──ok──▶ sent
       ▲                  │──429 / 5xx / connection refused──▶ pending (next_attempt_at = backoff)
       │                  │──403 (blocked, deactivated)───────▶ blocked (the user is flagged, later rows skipped)
       │                  │──400 / attempts exhausted─────────▶ failed
       │                  └──timeout, reset mid-request───────▶ unknown
       └─ enqueue (ON CONFLICT (key) DO NOTHING)

Exactly-once and the in-flight window. Telegram has no idempotency key for
sendMessage, so whether a request reached the user can only be known from its
answer. The claim (``pending → sending``) is committed BEFORE the request and
the result right after it, so at most one row per sender is ever in flight.
When the answer proves nothing was delivered (a 429, a 5xx, a refused
connection) the row is retried with exponential backoff; when it is ambiguous
(a timeout or a connection lost after the request left) the row becomes
``unknown`` and is never resent; after a crash, rows left ``sending`` for
longer than ``STALE_CLAIM`` are ``unknown`` too. So nobody ever sees a message
twice, every message whose fate is known is delivered exactly once, and a
crash costs at most the single message that was in flight (kept, and counted,
as ``unknown``). We chose at-most-once for that one message over a possible
duplicate: a repeated "order filled" or "payment failed" misleads more than a
missing one, which the user can still find in the bot (/history, /billing).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

MAX_KEY = 191  # fits a unique index on every backend
MAX_ERROR = 255
STALE_CLAIM = timedelta(minutes=5)  # a claim older than this belongs to a sender that died

# Data retention (the scheduler's clean-up job; see workers/scheduler.py)
KEEP_FINISHED = timedelta(days=14)  # sent / blocked / failed / unknown rows: long enough to answer "did I get it?"


class Status(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    BLOCKED = "blocked"  # the user blocked the bot (403): never retried
    FAILED = "failed"  # rejected (400) or out of attempts
    UNKNOWN = "unknown"  # in flight at a crash or an ambiguous network error: maybe delivered, never resent


WAITING = (Status.PENDING.value, Status.SENDING.value)
FINISHED = (Status.SENT.value, Status.BLOCKED.value, Status.FAILED.value, Status.UNKNOWN.value)


class Kind(StrEnum):
    ALERT = "alert"
    SIGNAL = "signal"
    DIGEST = "digest"
    TICKET = "ticket"
    BILLING = "billing"
    BROADCAST = "broadcast"
    AUTOTRADE = "autotrade"
    OTHER = "other"


def kind_of(key: str) -> Kind:
    """Keys start with their kind (``alert:12:1700000000000``); anything else is OTHER."""
    parts = key.split(":", 2)
    if parts[0] == "agents":  # the agent runner's ``agents:digest:…`` and ``agents:signal:…``
        return Kind.DIGEST if len(parts) > 1 and parts[1] == "digest" else Kind.SIGNAL
    return Kind(parts[0]) if parts[0] in Kind._value2member_map_ else Kind.OTHER


def normalize_key(key: str) -> str:
    """Keys longer than the column keep their start (readable) and a digest of the whole (unique)."""
    if not key:
        raise ValueError("an outbox message needs a de-duplication key")
    if len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return key[: MAX_KEY - 41] + "#" + digest


@dataclass(frozen=True, slots=True)
class Message:
    """A message waiting in (or taken from) the outbox; ``markup`` is Telegram's reply_markup JSON."""

    key: str
    chat_id: int
    text: str
    kind: Kind = Kind.OTHER
    markup: dict[str, Any] | None = field(default=None, hash=False)
    id: int = 0
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class Depth:
    waiting: int
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class Pacing:
    """Telegram's limits, configurable: ~30 msg/s overall (we stay under), 1 msg/s per private
    chat, 20 msg/min per group; transient errors back off exponentially up to ``max_attempts``."""

    global_rate: float = 25.0  # messages per second, every chat together
    chat_interval: float = 1.0  # seconds between two messages to one private chat
    group_per_minute: int = 20  # messages per minute to one group or channel
    max_attempts: int = 6
    backoff_base: float = 2.0  # seconds before the first retry, doubled each attempt
    backoff_max: float = 600.0

    def __post_init__(self) -> None:
        if self.global_rate <= 0 or self.chat_interval < 0 or self.group_per_minute <= 0 or self.max_attempts < 1:
            raise ValueError("invalid pacing")

    def interval_for(self, chat_id: int) -> float:
        """Negative ids are groups and channels."""
        return 60.0 / self.group_per_minute if chat_id < 0 else self.chat_interval

    def backoff(self, attempts: int) -> timedelta:
        """Wait before attempt ``attempts + 1`` (``attempts`` already made)."""
        return timedelta(seconds=min(self.backoff_base * 2 ** max(attempts - 1, 0), self.backoff_max))


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"  # certainly not delivered: try again later
    BLOCKED = "blocked"
    FAILED = "failed"
    UNKNOWN = "unknown"


def markup_json(markup: Any) -> dict[str, Any] | None:
    """Whatever the caller gave (a pydantic model, a dict, None) as plain JSON."""
    if markup is None:
        return None
    if isinstance(markup, dict):
        return json.loads(json.dumps(markup))
    dump = getattr(markup, "model_dump", None)
    if dump is None:
        raise TypeError("reply markup must be a dict or a pydantic model")
    return dict(dump(mode="json", exclude_none=True))
