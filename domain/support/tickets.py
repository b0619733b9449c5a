"""Support tickets: a thread between one user and the staff.

Isolation: a ticket is visible to its owner and to staff only. Anyone else
gets :class:`TicketNotFound` (never "forbidden": the id's existence is not
revealed). Paid tiers get priority: the priority is the tier's rank, and the
promised response time follows from it. A ticket may carry one payment
(/paysupport): only one of its owner's own payments, checked when it is chosen
and again when the ticket is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from collections.abc import Awaitable, Callable
from typing import Protocol

from domain.audit import AuditEntry, AuditRepository, Surface
from domain.billing.model import Payment
from domain.clock import Clock, utcnow
from domain.errors import DomainError, InvalidInput, NotFound
from domain.tiers import Tier
from domain.users import User

MAX_TEXT = 3000
QUEUE_SIZE = 20
MINE_SIZE = 10

# Queues the messages a change causes in the change's own transaction (called just before it commits).
Announce = Callable[["Ticket"], Awaitable[None]]


class Category(StrEnum):
    ACCOUNT = "account"
    BILLING = "billing"
    TRADING = "trading"
    TECHNICAL = "technical"
    OTHER = "other"


class Status(StrEnum):
    OPEN = "open"  # waiting for staff
    ANSWERED = "answered"  # waiting for the user
    CLOSED = "closed"


class QueueFilter(StrEnum):
    OPEN = "open"
    MINE = "mine"
    PRIORITY = "priority"


# Expected first response by priority (= tier rank): free 48 h, basic 24 h, pro 8 h, enterprise 2 h.
RESPONSE_TIME = {0: timedelta(hours=48), 1: timedelta(hours=24), 2: timedelta(hours=8), 3: timedelta(hours=2)}


def response_time(priority: int) -> timedelta:
    return RESPONSE_TIME.get(priority, RESPONSE_TIME[0] if priority < 0 else RESPONSE_TIME[3])


class TicketNotFound(NotFound):
    code = "SUP-NOT-FOUND"


class PaymentNotAttachable(NotFound):
    """Not one of the user's payments (whether it exists elsewhere is not revealed)."""

    code = "SUP-NO-PAYMENT"


class TicketClosed(DomainError):
    """The ticket is closed: params: ticket."""

    code = "SUP-CLOSED"


@dataclass(frozen=True, slots=True)
class Ticket:
    id: int
    user_id: int
    category: Category
    status: Status
    priority: int
    assignee_id: int | None
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None
    subject: str = ""  # the first message, for lists
    payment_id: int | None = None  # the payment it is about (one of the owner's)

    @property
    def expected_response(self) -> timedelta:
        return response_time(self.priority)


@dataclass(frozen=True, slots=True)
class TicketMessage:
    id: int
    ticket_id: int
    author_id: int
    from_staff: bool
    text: str
    file_id: str | None
    file_kind: str | None  # "photo" or "document"
    at: datetime


@dataclass(frozen=True, slots=True)
class Thread:
    ticket: Ticket
    messages: list[TicketMessage]
    payment: Payment | None = None


@dataclass(frozen=True, slots=True)
class Attachment:
    file_id: str
    kind: str  # "photo" or "document"


class TicketRepository(Protocol):
    async def create(
        self, user_id: int, category: str, priority: int, now: datetime, payment_id: int | None = None
    ) -> Ticket: ...
    async def payment(self, payment_id: int) -> Payment | None: ...
    async def add_message(
        self, ticket_id: int, author_id: int, from_staff: bool, text: str, attachment: Attachment | None, now: datetime
    ) -> TicketMessage: ...
    async def get(self, ticket_id: int, *, for_update: bool = False) -> Ticket | None: ...
    async def messages(self, ticket_id: int) -> list[TicketMessage]: ...
    async def set(self, ticket_id: int, now: datetime, **fields: object) -> Ticket: ...
    async def of_user(self, user_id: int, limit: int) -> list[Ticket]: ...
    async def queue(self, flt: QueueFilter, staff_id: int, limit: int) -> list[Ticket]: ...
    async def staff_members(self) -> list[User]: ...


class SupportUnit(Protocol):
    @property
    def tickets(self) -> TicketRepository: ...
    @property
    def audit(self) -> AuditRepository: ...
    async def commit(self) -> None: ...


def _text(text: str, attachment: Attachment | None) -> str:
    text = (text or "").strip()
    if not text and attachment is None:
        raise InvalidInput("empty ticket message")
    if len(text) > MAX_TEXT:
        raise InvalidInput("ticket message too long", limit=MAX_TEXT)
    return text


class SupportService:
    def __init__(self, clock: Clock = utcnow, surface: Surface = Surface.CHAT) -> None:
        self._clock = clock
        self._surface = surface

    async def open(
        self, uow: SupportUnit, user: User, tier: Tier, category: str, text: str, attachment: Attachment | None = None,
        *, announce: Announce | None = None, payment_id: int | None = None,
    ) -> Ticket:  # fmt: skip
        """A new ticket; ``payment_id``: the payment it is about, which must be one of the user's own."""
        try:
            cat = Category(category)
        except ValueError:
            raise InvalidInput("unknown ticket category", value=category[:16]) from None
        body = _text(text, attachment)
        if payment_id is not None:
            await self.own_payment(uow, user, payment_id)
        now = self._clock()
        ticket = await uow.tickets.create(user.id, cat, tier.rank, now, payment_id)
        await uow.tickets.add_message(ticket.id, user.id, False, body, attachment, now)
        details: dict[str, object] = {"ticket": ticket.id, "category": cat.value}
        if payment_id is not None:
            details["payment"] = payment_id
        await uow.audit.append(AuditEntry("ticket.opened", user.id, user.id, self._surface, details))
        return await self._commit(uow, ticket, announce)

    async def own_payment(self, uow: SupportUnit, user: User, payment_id: int) -> Payment:
        """One of the user's own payments, to attach to a ticket; anyone else's (or none): PaymentNotAttachable."""
        payment = await uow.tickets.payment(payment_id) if 0 < payment_id else None
        if payment is None or payment.user_id != user.id:
            raise PaymentNotAttachable("not a payment of this user")
        return payment

    async def mine(self, uow: SupportUnit, user: User) -> list[Ticket]:
        return await uow.tickets.of_user(user.id, MINE_SIZE)

    async def _visible(self, uow: SupportUnit, actor: User, ticket_id: int, *, for_update: bool = False) -> Ticket:
        ticket = await uow.tickets.get(ticket_id, for_update=for_update)
        if ticket is None or (ticket.user_id != actor.id and not actor.is_staff):
            raise TicketNotFound("ticket", ticket=ticket_id)
        return ticket

    async def _owned(self, uow: SupportUnit, user: User, ticket_id: int) -> Ticket:
        """The user's own ticket (staff acting as a customer get no extra rights here)."""
        ticket = await uow.tickets.get(ticket_id, for_update=True)
        if ticket is None or ticket.user_id != user.id:
            raise TicketNotFound("ticket", ticket=ticket_id)
        return ticket

    async def thread(self, uow: SupportUnit, actor: User, ticket_id: int) -> Thread:
        ticket = await self._visible(uow, actor, ticket_id)
        payment = await uow.tickets.payment(ticket.payment_id) if ticket.payment_id is not None else None
        return Thread(ticket, await uow.tickets.messages(ticket.id), payment)

    async def user_reply(
        self, uow: SupportUnit, user: User, ticket_id: int, text: str, attachment: Attachment | None = None,
        *, announce: Announce | None = None,
    ) -> Ticket:  # fmt: skip
        ticket = await self._owned(uow, user, ticket_id)
        if ticket.status == Status.CLOSED:
            raise TicketClosed("ticket closed", ticket=ticket.id)
        body = _text(text, attachment)
        now = self._clock()
        await uow.tickets.add_message(ticket.id, user.id, False, body, attachment, now)
        ticket = await uow.tickets.set(ticket.id, now, status=Status.OPEN.value)
        return await self._commit(uow, ticket, announce)

    async def _commit(self, uow: SupportUnit, ticket: Ticket, announce: Announce | None) -> Ticket:
        if announce is not None:
            await announce(ticket)
        await uow.commit()
        return ticket

    async def staff_reply(
        self, uow: SupportUnit, staff: User, ticket_id: int, text: str, *, announce: Announce | None = None
    ) -> Ticket:
        self._require_staff(staff, ticket_id)
        ticket = await self._visible(uow, staff, ticket_id, for_update=True)
        if ticket.status == Status.CLOSED:
            raise TicketClosed("ticket closed", ticket=ticket.id)
        body = _text(text, None)
        now = self._clock()
        await uow.tickets.add_message(ticket.id, staff.id, True, body, None, now)
        fields: dict[str, object] = {"status": Status.ANSWERED.value}
        if ticket.assignee_id is None:
            fields["assignee_id"] = staff.id
        ticket = await uow.tickets.set(ticket.id, now, **fields)
        await uow.audit.append(
            AuditEntry("ticket.answered", staff.id, ticket.user_id, self._surface, {"ticket": ticket.id})
        )
        return await self._commit(uow, ticket, announce)

    async def close(
        self, uow: SupportUnit, actor: User, ticket_id: int, *, announce: Announce | None = None
    ) -> Ticket:
        ticket = await self._visible(uow, actor, ticket_id, for_update=True)
        if ticket.status == Status.CLOSED:
            return ticket  # a double tap closes once
        now = self._clock()
        ticket = await uow.tickets.set(ticket.id, now, status=Status.CLOSED.value, closed_at=now)
        await uow.audit.append(
            AuditEntry("ticket.closed", actor.id, ticket.user_id, self._surface, {"ticket": ticket.id})
        )
        return await self._commit(uow, ticket, announce)

    async def reopen(self, uow: SupportUnit, actor: User, ticket_id: int) -> Ticket:
        ticket = await self._visible(uow, actor, ticket_id, for_update=True)
        if ticket.status != Status.CLOSED:
            return ticket
        now = self._clock()
        ticket = await uow.tickets.set(ticket.id, now, status=Status.OPEN.value, closed_at=None)
        await uow.audit.append(
            AuditEntry("ticket.reopened", actor.id, ticket.user_id, self._surface, {"ticket": ticket.id})
        )
        await uow.commit()
        return ticket

    async def assign(self, uow: SupportUnit, staff: User, ticket_id: int) -> Ticket:
        """Take the ticket (assign it to the acting staff member)."""
        self._require_staff(staff, ticket_id)
        ticket = await self._visible(uow, staff, ticket_id, for_update=True)
        if ticket.assignee_id == staff.id:
            return ticket
        ticket = await uow.tickets.set(ticket.id, self._clock(), assignee_id=staff.id)
        await uow.audit.append(
            AuditEntry("ticket.assigned", staff.id, ticket.user_id, self._surface, {"ticket": ticket.id})
        )
        await uow.commit()
        return ticket

    async def queue(self, uow: SupportUnit, staff: User, flt: str) -> list[Ticket]:
        self._require_staff(staff, 0)
        try:
            which = QueueFilter(flt)
        except ValueError:
            raise InvalidInput("unknown queue filter", value=flt[:16]) from None
        return await uow.tickets.queue(which, staff.id, QUEUE_SIZE)

    async def staff(self, uow: SupportUnit) -> list[User]:
        """Who hears about new tickets: every support member and admin."""
        return await uow.tickets.staff_members()

    @staticmethod
    def _require_staff(user: User, ticket_id: int) -> None:
        if not user.is_staff:
            raise TicketNotFound("ticket", ticket=ticket_id)
