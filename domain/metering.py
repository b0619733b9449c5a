"""Usage metering: every command and metered feature becomes a usage event.

Events are buffered in memory and written in batches by :meth:`Meter.flush`
(called by a background task every ``FLUSH_EVERY`` seconds and at shutdown).
Each event carries a random id that is its primary key, so a batch retried
after a failed commit is never counted twice. Counts include the events still
in the buffer. A quota'd use (an AI analysis) is not buffered: :meth:`Meter.claim`
counts and records it in one locked transaction, so a quota holds exactly
across every process of the deployment, even under concurrent requests.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from domain.clock import Clock, utcnow

log = logging.getLogger(__name__)

FLUSH_EVERY = 1.0


class UsageKind(StrEnum):
    COMMAND = "command"
    FEATURE = "feature"


@dataclass(frozen=True, slots=True)
class UsageEvent:
    id: str
    user_id: int
    kind: UsageKind
    name: str
    quantity: int
    at: datetime


class UsageStore(Protocol):
    """Opens its own unit of work: the meter writes outside the update's transaction."""

    async def write(self, events: list[UsageEvent]) -> None: ...
    async def totals(self, user_id: int, since: datetime, until: datetime) -> dict[tuple[str, str], int]: ...
    async def claim(self, event: UsageEvent, since: datetime, limit: int) -> int | None: ...
    async def refund(self, event_id: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Claim:
    event_id: str
    used: int  # including this one


class Meter:
    def __init__(self, store: UsageStore, clock: Clock = utcnow) -> None:
        self._store = store
        self.clock = clock  # when a use happens (the quota windows read the same clock)
        self._buffer: list[UsageEvent] = []
        self._lock = asyncio.Lock()
        self._claims = asyncio.Lock()  # one process's claims take turns (SQLite has no row locks)

    def record(self, user_id: int, kind: UsageKind, name: str, quantity: int = 1) -> None:
        self._buffer.append(UsageEvent(uuid.uuid4().hex, user_id, kind, name, quantity, self.clock()))

    async def claim(self, user_id: int, kind: UsageKind, name: str, since: datetime, limit: int) -> Claim | None:
        """Record one use unless ``limit`` uses since ``since`` are already recorded; None when used up."""
        event = UsageEvent(uuid.uuid4().hex, user_id, kind, name, 1, self.clock())
        async with self._claims:
            used = await self._store.claim(event, since, limit)
        return None if used is None else Claim(event.id, used)

    async def refund(self, claim: Claim) -> None:
        """Take back a claimed use whose work failed."""
        await self._store.refund(claim.event_id)

    @property
    def pending(self) -> int:
        return len(self._buffer)

    async def flush(self) -> int:
        """Write buffered events; on failure they stay queued for the next flush."""
        async with self._lock:
            if not self._buffer:
                return 0
            batch, self._buffer = self._buffer, []
            try:
                await self._store.write(batch)
            except Exception:
                self._buffer[:0] = batch
                log.exception("usage flush failed; %d events kept for retry", len(self._buffer))
                return 0
            return len(batch)

    async def totals(self, user_id: int, since: datetime, until: datetime | None = None) -> Counter[tuple[str, str]]:
        """(kind, name) -> quantity for one user over [since, until), or [since, now] by default."""
        end = until if until is not None else self.clock() + timedelta(microseconds=1)
        async with self._lock:  # never between a batch's commit and its removal from the buffer
            counts: Counter[tuple[str, str]] = Counter(await self._store.totals(user_id, since, end))
            for event in self._buffer:
                if event.user_id == user_id and since <= event.at < end:
                    counts[(event.kind.value, event.name)] += event.quantity
        return counts

    async def used(self, user_id: int, kind: UsageKind, name: str, since: datetime) -> int:
        return (await self.totals(user_id, since))[(kind.value, name)]
