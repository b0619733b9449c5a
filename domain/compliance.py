"""Compliance: versioned disclosures and consent, data export, erasure, the user's audit trail.

Trading stays locked until the CURRENT risk disclosure is accepted: publishing
a new version (bump :data:`CURRENT`) asks everyone again. Texts live in the
catalogs (bot/views/compliance.py), keyed by document and version.

Erasure keeps only what the law requires for payments: the payment records
(amounts, dates, receipt ids), the subscription record and the audit trail of
actions on the account, linked to the bare numeric Telegram id. Everything
else (names, username, language, settings, ticket texts, feedback, consents,
trading data, usage) is deleted or blanked, and the profile starts fresh.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from domain.audit import AuditEntry, AuditRepository, Surface
from domain.clock import Clock, utcnow
from domain.errors import InvalidInput
from domain.users import User


class Document(StrEnum):
    RISK = "risk"
    TERMS = "terms"
    PRIVACY = "privacy"

    @classmethod
    def parse(cls, value: str) -> Document:
        """The document a button names; InvalidInput for anything else (button data is the user's)."""
        try:
            return cls(value)
        except ValueError:
            raise InvalidInput("unknown document", value=value[:16]) from None


# The versions in force. A new version of a text goes with a new key here and a new text in the views.
CURRENT: dict[Document, str] = {Document.RISK: "2026-11", Document.TERMS: "2026-11", Document.PRIVACY: "2026-11"}

EXPORT_FORMAT = 1
AUDIT_TRAIL = 20


@dataclass(frozen=True, slots=True)
class Consent:
    document: Document
    version: str
    accepted_at: datetime


@dataclass(frozen=True, slots=True)
class ConsentStatus:
    accepted: dict[Document, Consent] = field(hash=False)  # latest accepted version per document

    def current(self, document: Document) -> bool:
        consent = self.accepted.get(document)
        return consent is not None and consent.version == CURRENT[document]

    @property
    def trading_unlocked(self) -> bool:
        return self.current(Document.RISK)


@dataclass(frozen=True, slots=True)
class Erasure:
    deleted: dict[str, int] = field(hash=False)  # table -> rows deleted
    kept: dict[str, int] = field(hash=False)  # table -> rows kept for legal reasons


class ConsentRepository(Protocol):
    async def accepted(self, user_id: int) -> list[Consent]: ...
    async def add(self, user_id: int, document: str, version: str, now: datetime) -> None: ...


class PersonalData(Protocol):
    async def export(self, user_id: int) -> dict[str, Any]: ...
    async def erase(self, user_id: int, now: datetime) -> Erasure: ...


class ComplianceUnit(Protocol):
    @property
    def consents(self) -> ConsentRepository: ...
    @property
    def personal_data(self) -> PersonalData: ...
    @property
    def audit(self) -> AuditRepository: ...
    async def commit(self) -> None: ...


UNLOCKED_CACHED = 50_000  # users whose accepted disclosure a process remembers


class ComplianceService:
    def __init__(self, clock: Clock = utcnow, surface: Surface = Surface.CHAT) -> None:
        self._clock = clock
        self._surface = surface
        # user -> the risk disclosure version known to be accepted, the most recently checked last; bounded
        # (a user pushed out costs one query at their next gated command)
        self._unlocked: OrderedDict[int, str] = OrderedDict()
        self._drops = 0  # bumped by every forget: an answer read before a drop is not remembered after it
        # told the id of each user whose consents changed (the app publishes it to every process, whose
        # caches then drop it: see :meth:`forget`)
        self.on_change: list[Callable[[int], None]] = []

    async def status(self, uow: ComplianceUnit, user_id: int) -> ConsentStatus:
        drops = self._drops
        consents = await uow.consents.accepted(user_id)
        latest: dict[Document, Consent] = {}
        for consent in sorted(consents, key=lambda c: c.accepted_at):
            latest[consent.document] = consent
        status = ConsentStatus(latest)
        if status.trading_unlocked and drops == self._drops:  # no erasure landed while we read
            self._remember(user_id)
        return status

    def _remember(self, user_id: int) -> None:
        self._unlocked[user_id] = CURRENT[Document.RISK]
        self._unlocked.move_to_end(user_id)
        while len(self._unlocked) > UNLOCKED_CACHED:
            self._unlocked.popitem(last=False)

    async def trading_unlocked(self, uow: ComplianceUnit, user_id: int) -> bool:
        """The gate's check: a positive answer is remembered, so accepted users cost no query."""
        if self._unlocked.get(user_id) == CURRENT[Document.RISK]:
            self._unlocked.move_to_end(user_id)
            return True
        return (await self.status(uow, user_id)).trading_unlocked

    async def accept(self, uow: ComplianceUnit, user: User, document: str) -> ConsentStatus:
        try:
            doc = Document(document)
        except ValueError:
            raise InvalidInput("unknown document", value=document[:16]) from None
        await self._record(uow, user.id, [doc])
        await uow.commit()
        self._changed(user.id)
        return await self.status(uow, user.id)

    async def accept_all(self, uow: ComplianceUnit, user_id: int) -> None:
        """Record acceptance of every current document (pre-onboarded test users; no audit entries)."""
        await self._record(uow, user_id, list(Document), audited=False)
        await uow.commit()
        self._remember(user_id)

    async def _record(
        self, uow: ComplianceUnit, user_id: int, documents: list[Document], *, audited: bool = True
    ) -> None:
        now = self._clock()
        for doc in documents:
            await uow.consents.add(user_id, doc.value, CURRENT[doc], now)
            if audited:
                await uow.audit.append(
                    AuditEntry(
                        "consent.accepted",
                        user_id,
                        user_id,
                        self._surface,
                        {"document": doc.value, "version": CURRENT[doc]},
                    )
                )

    async def export(self, uow: ComplianceUnit, user: User) -> dict[str, Any]:
        """Everything stored about the user, and nobody else's data; the export itself is audited."""
        data = await uow.personal_data.export(user.id)
        document = {"format": EXPORT_FORMAT, "exported_at": self._clock().isoformat(), "user_id": user.id, **data}
        await uow.audit.append(AuditEntry("data.exported", user.id, user.id, self._surface, {}))
        await uow.commit()
        return document

    async def erase(self, uow: ComplianceUnit, user: User) -> Erasure:
        erasure = await uow.personal_data.erase(user.id, self._clock())
        await uow.audit.append(
            AuditEntry(
                "data.erased", user.id, user.id, self._surface, {"deleted": erasure.deleted, "kept": erasure.kept}
            )
        )
        await uow.commit()
        self.forget(user.id)
        self._changed(user.id)
        return erasure

    def forget(self, user_id: int | None = None) -> None:
        """Drop what this process remembers of a user's consents (None: everyone's); the next check reads them."""
        self._drops += 1
        if user_id is None:
            self._unlocked.clear()
        else:
            self._unlocked.pop(user_id, None)

    def _changed(self, user_id: int) -> None:
        for listener in self.on_change:
            listener(user_id)

    async def activity(self, uow: ComplianceUnit, user: User, limit: int = AUDIT_TRAIL) -> list[AuditEntry]:
        return await uow.audit.for_user(user.id, limit)
