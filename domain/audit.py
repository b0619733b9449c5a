"""The audit log: append-only record of who did what, when, from which surface.

Written in the same transaction as the effect it records, so an audited action
and its audit entry commit or roll back together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class Surface(StrEnum):
    CHAT = "chat"
    CONSOLE = "console"
    WEB = "web"
    WORKER = "worker"
    SYSTEM = "system"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    action: str
    actor_id: int | None  # who acted (None: the system)
    user_id: int | None  # whose data it concerns
    surface: Surface
    details: dict[str, Any] = field(default_factory=dict, hash=False)
    at: datetime | None = None  # set by the repository when None
    id: int | None = None


class AuditRepository(Protocol):
    async def append(self, entry: AuditEntry) -> None: ...
    async def for_user(self, user_id: int, limit: int = 20) -> list[AuditEntry]: ...
