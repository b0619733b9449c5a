"""Broadcasts: an admin's message to a segment of users, delivered through a persisted outbox.

Delivery guarantee (the exactly-once trade-off). Telegram has no idempotency
key for sendMessage, so "sent" can only be recorded after the fact. Each
outbox row, unique per (broadcast, user), moves ``pending → claimed → sent``
(or blocked / failed) and every move is its own commit: the claim is committed
BEFORE the request, the result right after it. After a crash, a row still
``claimed`` may or may not have reached the user; it is marked ``unknown`` and
never resent. So: nobody ever gets a broadcast twice (at-most-once), and at
most one message per crash (the single one in flight) is unconfirmed and
reported as such to the admin; every other row is delivered exactly once.
One sender per deployment paces all broadcasts under a global rate; a second
sender could not duplicate (claims are conditional updates) but would double
the rate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from domain.audit import AuditEntry, AuditRepository, Surface
from domain.clock import Clock, utcnow
from domain.errors import DomainError, InvalidInput, NotFound
from domain.users import LANGUAGES, Role, User

MAX_TEXT = 1024  # a photo caption's limit, so a text fits either way
MAX_BUTTON = 64


class Status(StrEnum):
    DRAFT = "draft"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"


class Delivery(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENT = "sent"
    BLOCKED = "blocked"
    FAILED = "failed"
    UNKNOWN = "unknown"  # claimed before a crash: maybe delivered, never resent


class BroadcastNotFound(NotFound):
    code = "BC-NOT-FOUND"


class EmptyAudience(DomainError):
    code = "BC-EMPTY"


@dataclass(frozen=True, slots=True)
class Segment:
    tier: str | None = None
    language: str | None = None
    active_days: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"tier": self.tier, "language": self.language, "active_days": self.active_days}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        days = data.get("active_days")
        return cls(data.get("tier"), data.get("language"), int(days) if days else None)


@dataclass(frozen=True, slots=True)
class Draft:
    text: str
    photo_file_id: str | None = None
    button_text: str | None = None
    button_url: str | None = None
    segment: Segment = field(default_factory=Segment)


@dataclass(frozen=True, slots=True)
class Broadcast:
    id: int
    admin_id: int
    text: str
    photo_file_id: str | None
    button_text: str | None
    button_url: str | None
    segment: Segment
    status: Status
    progress_message_id: int | None
    created_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True, slots=True)
class Progress:
    broadcast_id: int
    counts: dict[str, int] = field(hash=False)

    def n(self, status: Delivery) -> int:
        return self.counts.get(status.value, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def remaining(self) -> int:
        return self.n(Delivery.PENDING) + self.n(Delivery.CLAIMED)

    @property
    def done(self) -> bool:
        return self.remaining == 0


class BroadcastRepository(Protocol):
    async def create(self, admin_id: int, draft: Draft, now: datetime) -> Broadcast: ...
    async def get(self, broadcast_id: int, *, for_update: bool = False) -> Broadcast | None: ...
    async def set(self, broadcast_id: int, **fields: object) -> None: ...
    async def audience(self, segment: Segment, now: datetime) -> int: ...
    async def fill(self, broadcast_id: int, segment: Segment, now: datetime) -> int: ...
    async def counts(self, broadcast_id: int) -> dict[str, int]: ...


class BroadcastUnit(Protocol):
    @property
    def broadcasts(self) -> BroadcastRepository: ...
    @property
    def audit(self) -> AuditRepository: ...
    async def commit(self) -> None: ...


def segment_since(segment: Segment, now: datetime) -> datetime | None:
    return now - timedelta(days=segment.active_days) if segment.active_days else None


def parse_button(text: str) -> tuple[str, str]:
    """``Label | https://example.com`` → (label, url)."""
    label, sep, url = text.partition("|")
    label, url = label.strip(), url.strip()
    if (
        not sep
        or not label
        or len(label) > MAX_BUTTON
        or not url.startswith(("https://", "http://", "tg://"))
        or " " in url
    ):
        raise InvalidInput("bad button", value=text[:64])
    return label, url[:512]


class BroadcastService:
    def __init__(self, clock: Clock = utcnow, surface: Surface = Surface.CHAT) -> None:
        self._clock = clock
        self._surface = surface

    @staticmethod
    def _admin(user: User) -> None:
        if user.role != Role.ADMIN:
            raise BroadcastNotFound("broadcast")

    def validate(self, draft: Draft) -> Draft:
        text = draft.text.strip()
        if not text or len(text) > MAX_TEXT:
            raise InvalidInput("broadcast text", limit=MAX_TEXT)
        segment = draft.segment
        if segment.language is not None and segment.language not in LANGUAGES:
            raise InvalidInput("language", value=segment.language)
        return Draft(text, draft.photo_file_id, draft.button_text, draft.button_url, segment)

    async def audience(self, uow: BroadcastUnit, admin: User, segment: Segment) -> int:
        self._admin(admin)
        return await uow.broadcasts.audience(segment, self._clock())

    async def create(self, uow: BroadcastUnit, admin: User, draft: Draft) -> Broadcast:
        self._admin(admin)
        broadcast = await uow.broadcasts.create(admin.id, self.validate(draft), self._clock())
        await uow.commit()
        return broadcast

    async def start(
        self, uow: BroadcastUnit, admin: User, broadcast_id: int, progress_message_id: int | None = None
    ) -> Progress:
        """Queue every recipient in the outbox (once: a double tap queues nothing more)."""
        self._admin(admin)
        broadcast = await uow.broadcasts.get(broadcast_id, for_update=True)
        if broadcast is None or broadcast.admin_id != admin.id:
            raise BroadcastNotFound("broadcast", id=broadcast_id)
        if broadcast.status == Status.DRAFT:
            queued = await uow.broadcasts.fill(broadcast.id, broadcast.segment, self._clock())
            if not queued:
                raise EmptyAudience("nobody in the segment")
            await uow.broadcasts.set(broadcast.id, status=Status.SENDING.value, progress_message_id=progress_message_id)
            await uow.audit.append(
                AuditEntry("broadcast.started", admin.id, None, self._surface,
                           {"broadcast": broadcast.id, "recipients": queued, "segment": broadcast.segment.to_json()})
            )  # fmt: skip
            await uow.commit()
        return Progress(broadcast.id, await uow.broadcasts.counts(broadcast.id))

    async def cancel(self, uow: BroadcastUnit, admin: User, broadcast_id: int) -> None:
        self._admin(admin)
        broadcast = await uow.broadcasts.get(broadcast_id, for_update=True)
        if broadcast is None or broadcast.admin_id != admin.id:
            raise BroadcastNotFound("broadcast", id=broadcast_id)
        if broadcast.status == Status.DRAFT:
            await uow.broadcasts.set(broadcast.id, status=Status.CANCELLED.value)
            await uow.commit()
