"""Repositories for support, feedback, consents, personal data, staff dashboards and broadcasts. They never commit."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, case, delete, func, literal, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.admin import LAPSED_STATUSES, PAYING_RAILS, PAYING_STATUSES, Counts, SubscriptionLine
from domain.compliance import Consent, Document, Erasure
from domain.db.models import (
    AuditRow,
    Base,
    ConsentRow,
    ErrorEventRow,
    FeedbackRow,
    PaymentRow,
    SubscriptionRow,
    TicketMessageRow,
    TicketRow,
    UsageEventRow,
    UserRow,
)
from domain.billing.model import Payment
from domain.db.billing import _payment
from domain.db.repositories import _user
from domain.errors import NotFound
from domain.parsing import INT64_MAX, looks_numeric, parse_int
from domain.support.feedback import Feedback, FeedbackSummary, Kind
from domain.support.tickets import (
    Attachment,
    Category,
    QueueFilter,
    Status,
    Ticket,
    TicketMessage,
)
from domain.tiers import FREE
from domain.users import DEFAULT_NOTIFICATIONS, Role, User

_SUBJECT = 80
_INT32_MAX = 2**31 - 1  # payments.id is an INTEGER


def _insert(session: AsyncSession):  # type: ignore[no-untyped-def]
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


def _ticket(row: TicketRow, subject: str = "") -> Ticket:
    return Ticket(
        id=row.id,
        user_id=row.user_id,
        category=Category(row.category),
        status=Status(row.status),
        priority=row.priority,
        assignee_id=row.assignee_id,
        created_at=row.created_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
        subject=subject,
        payment_id=row.payment_id,
    )


def _message(row: TicketMessageRow) -> TicketMessage:
    return TicketMessage(
        row.id, row.ticket_id, row.author_id, row.from_staff, row.text, row.file_id, row.file_kind, row.at
    )


class SqlTicketRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def create(
        self, user_id: int, category: str, priority: int, now: datetime, payment_id: int | None = None
    ) -> Ticket:
        row = TicketRow(
            user_id=user_id, category=category, status=Status.OPEN.value, priority=priority,
            assignee_id=None, created_at=now, updated_at=now, closed_at=None, payment_id=payment_id,
        )  # fmt: skip
        self._s.add(row)
        await self._s.flush()
        return _ticket(row)

    async def payment(self, payment_id: int) -> Payment | None:
        if not 0 < payment_id <= _INT32_MAX:  # beyond the column: no such row (PostgreSQL would refuse the query)
            return None
        row = await self._s.get(PaymentRow, payment_id)
        return _payment(row) if row else None

    async def add_message(
        self, ticket_id: int, author_id: int, from_staff: bool, text: str, attachment: Attachment | None, now: datetime
    ) -> TicketMessage:
        row = TicketMessageRow(
            ticket_id=ticket_id, author_id=author_id, from_staff=from_staff, text=text,
            file_id=attachment.file_id if attachment else None, file_kind=attachment.kind if attachment else None, at=now,
        )  # fmt: skip
        self._s.add(row)
        await self._s.flush()
        return _message(row)

    async def get(self, ticket_id: int, *, for_update: bool = False) -> Ticket | None:
        row = await self._s.get(TicketRow, ticket_id, with_for_update=for_update or None)
        return _ticket(row) if row else None

    async def messages(self, ticket_id: int) -> list[TicketMessage]:
        rows = await self._s.scalars(
            select(TicketMessageRow).where(TicketMessageRow.ticket_id == ticket_id).order_by(TicketMessageRow.id)
        )
        return [_message(r) for r in rows]

    async def set(self, ticket_id: int, now: datetime, **fields: object) -> Ticket:
        row = await self._s.get(TicketRow, ticket_id)
        if row is None:
            raise NotFound("ticket", ticket=ticket_id)
        for name, value in fields.items():
            setattr(row, name, value)
        row.updated_at = now
        await self._s.flush()
        return _ticket(row)

    async def _with_subjects(self, rows: list[TicketRow]) -> list[Ticket]:
        if not rows:
            return []
        first = (
            select(TicketMessageRow.ticket_id, func.min(TicketMessageRow.id).label("mid"))
            .where(TicketMessageRow.ticket_id.in_([r.id for r in rows]))
            .group_by(TicketMessageRow.ticket_id)
            .subquery()
        )
        texts = dict(
            (
                await self._s.execute(
                    select(first.c.ticket_id, TicketMessageRow.text).join(
                        TicketMessageRow, TicketMessageRow.id == first.c.mid
                    )
                )
            ).all()
        )
        return [_ticket(r, (texts.get(r.id) or "")[:_SUBJECT]) for r in rows]

    async def of_user(self, user_id: int, limit: int) -> list[Ticket]:
        rows = await self._s.scalars(
            select(TicketRow).where(TicketRow.user_id == user_id).order_by(TicketRow.id.desc()).limit(limit)
        )
        return await self._with_subjects(list(rows))

    async def queue(self, flt: QueueFilter, staff_id: int, limit: int) -> list[Ticket]:
        query = select(TicketRow).where(TicketRow.status == Status.OPEN.value)
        if flt == QueueFilter.MINE:
            query = select(TicketRow).where(TicketRow.assignee_id == staff_id, TicketRow.status != Status.CLOSED.value)
            query = query.order_by(TicketRow.updated_at.desc())
        elif flt == QueueFilter.PRIORITY:
            query = query.where(TicketRow.priority > 0).order_by(TicketRow.priority.desc(), TicketRow.id)
        else:
            query = query.order_by(TicketRow.priority.desc(), TicketRow.id)
        rows = await self._s.scalars(query.limit(limit))
        return await self._with_subjects(list(rows))

    async def staff_members(self) -> list[User]:
        rows = await self._s.scalars(
            select(UserRow).where(UserRow.role != Role.USER.value, UserRow.is_blocked.is_(False))
        )
        return [_user(r) for r in rows]

    async def open_count(self) -> int:
        return int(
            await self._s.scalar(
                select(func.count()).select_from(TicketRow).where(TicketRow.status != Status.CLOSED.value)
            )
            or 0
        )


class SqlFeedbackRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, user_id: int, kind: str, rating: int | None, text: str, now: datetime) -> Feedback:
        row = FeedbackRow(user_id=user_id, kind=kind, rating=rating, text=text, created_at=now)
        self._s.add(row)
        await self._s.flush()
        return Feedback(row.id, row.user_id, Kind(row.kind), row.rating, row.text, row.created_at)

    async def summary(self, recent: int) -> FeedbackSummary:
        counts = dict(
            (
                await self._s.execute(
                    select(FeedbackRow.rating, func.count())
                    .where(FeedbackRow.kind == Kind.RATING.value)
                    .group_by(FeedbackRow.rating)
                )
            ).all()
        )
        by_rating = {int(k): int(v) for k, v in counts.items() if k is not None}
        total = sum(by_rating.values())
        average = sum(k * v for k, v in by_rating.items()) / total if total else None
        requests = int(
            await self._s.scalar(
                select(func.count()).select_from(FeedbackRow).where(FeedbackRow.kind == Kind.REQUEST.value)
            )
            or 0
        )
        texts = await self._s.scalars(
            select(FeedbackRow.text)
            .where(FeedbackRow.kind == Kind.REQUEST.value)
            .order_by(FeedbackRow.id.desc())
            .limit(recent)
        )
        return FeedbackSummary(total, average, by_rating, requests, list(texts))


class SqlConsentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def accepted(self, user_id: int) -> list[Consent]:
        rows = await self._s.scalars(select(ConsentRow).where(ConsentRow.user_id == user_id).order_by(ConsentRow.id))
        return [
            Consent(Document(r.document), r.version, r.accepted_at)
            for r in rows
            if r.document in Document._value2member_map_
        ]

    async def add(self, user_id: int, document: str, version: str, now: datetime) -> None:
        """Idempotent: accepting a version twice keeps the first acceptance."""
        stmt = _insert(self._s)(ConsentRow).values(user_id=user_id, document=document, version=version, accepted_at=now)
        await self._s.execute(stmt.on_conflict_do_nothing(index_elements=["user_id", "document", "version"]))


# Tables kept on erasure because the law requires them for payments (and the account's security trail).
KEPT_ON_ERASURE = frozenset(
    {"payments", "subscriptions", "referral_rewards", "billing_credits", "meter_reports", "audit_log"}
)
# Never exported: secrets (encrypted broker passwords) and other people's identities.
_REDACTED_COLUMNS = frozenset({"password_enc"})
_COUNTERPARTS = ("referee_id", "referrer_id")
# Keys that name a person wherever they appear in an export (audit details, table rows, nested values):
# another user's id under one of them becomes "another user"; the exporting user's own id stays.
_PERSON_KEYS = frozenset(
    {"referee_id", "referrer_id", "referred_by", "user_id", "actor_id", "assignee_id", "author_id", "admin_id",
     "staff_id", "target_id", "friend_id", "payer_id", "chat_id", "from_id"}
)  # fmt: skip
OTHER_USER = "another user"


def _redact(value: Any, own_id: int) -> Any:
    """``value`` with every other user's id under a person key replaced (recursively, in dicts and lists)."""
    if isinstance(value, dict):
        return {
            k: (_other(v, own_id) if k in _PERSON_KEYS and not isinstance(v, dict | list) else _redact(v, own_id))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_redact(v, own_id) for v in value]
    return value


def _other(value: Any, own_id: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    try:
        number = int(str(value).strip())
    except ValueError:
        return value
    return value if number == own_id else OTHER_USER


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _user_tables() -> list[Table]:
    """Every table that stores rows owned by a user through a ``user_id`` column (other features included)."""
    skip = {"users", "audit_log", "tickets", "ticket_messages"}
    return [t for t in Base.metadata.sorted_tables if "user_id" in t.c and t.name not in skip]


class SqlPersonalData:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def export(self, user_id: int) -> dict[str, Any]:
        row = await self._s.get(UserRow, user_id)
        if row is None:
            raise NotFound("user", user_id=user_id)
        profile = {c.name: _plain(getattr(row, c.key)) for c in UserRow.__table__.c}
        if profile.get("referred_by") is not None:
            profile["referred_by"] = "another user"  # their id is theirs, not yours
        tickets: list[dict[str, Any]] = []
        for t in await self._s.scalars(select(TicketRow).where(TicketRow.user_id == user_id).order_by(TicketRow.id)):
            messages = await self._s.scalars(
                select(TicketMessageRow).where(TicketMessageRow.ticket_id == t.id).order_by(TicketMessageRow.id)
            )
            tickets.append(
                {
                    "id": t.id, "category": t.category, "status": t.status, "priority": t.priority,
                    "created_at": _plain(t.created_at), "closed_at": _plain(t.closed_at), "payment_id": t.payment_id,
                    "messages": [
                        {"from": "support" if m.from_staff else "you", "text": m.text, "file_id": m.file_id, "at": _plain(m.at)}
                        for m in messages
                    ],
                }
            )  # fmt: skip
        audit = [
            {"at": _plain(a.at), "action": a.action, "surface": a.surface, "details": a.details,
             "by": "you" if a.actor_id == user_id else ("system" if a.actor_id is None else "staff")}
            for a in await self._s.scalars(select(AuditRow).where(AuditRow.user_id == user_id).order_by(AuditRow.id))
        ]  # fmt: skip
        tables: dict[str, list[dict[str, Any]]] = {}
        for table in _user_tables():
            rows = (await self._s.execute(select(table).where(table.c.user_id == user_id))).mappings()
            tables[table.name] = [{k: _plain(v) for k, v in r.items() if k not in _REDACTED_COLUMNS} for r in rows]
        for table in Base.metadata.sorted_tables:
            if all(c in table.c for c in _COUNTERPARTS):
                rows = (
                    await self._s.execute(
                        select(table).where((table.c.referee_id == user_id) | (table.c.referrer_id == user_id))
                    )
                ).mappings()
                tables[table.name] = [
                    {k: (_plain(v) if k not in _COUNTERPARTS or v == user_id else "another user") for k, v in r.items()}
                    for r in rows
                ]
        # other people's ids never leave in someone's export (audit details, rows, payloads), in both directions
        return _redact({"profile": profile, "tickets": tickets, "audit": audit, "tables": tables}, user_id)

    async def erase(self, user_id: int, now: datetime) -> Erasure:
        row = await self._s.get(UserRow, user_id, with_for_update=True)
        if row is None:
            raise NotFound("user", user_id=user_id)
        deleted: dict[str, int] = {}
        kept: dict[str, int] = {}
        tickets = await self._s.execute(delete(TicketRow).where(TicketRow.user_id == user_id))
        # ON DELETE CASCADE removes the messages on PostgreSQL; SQLite may run without foreign keys enforced.
        await self._s.execute(delete(TicketMessageRow).where(TicketMessageRow.ticket_id.not_in(select(TicketRow.id))))
        deleted["tickets"] = int(tickets.rowcount or 0)
        for table in reversed(_user_tables()):
            if table.name in KEPT_ON_ERASURE:
                count = await self._s.scalar(select(func.count()).select_from(table).where(table.c.user_id == user_id))
                if count:
                    kept[table.name] = int(count)
                continue
            result = await self._s.execute(delete(table).where(table.c.user_id == user_id))
            if result.rowcount:
                deleted[table.name] = int(result.rowcount)
        await self._s.execute(
            update(UserRow)
            .where(UserRow.id == user_id)
            .values(
                first_name="", username=None, language=None, tg_language=None, timezone="UTC",
                notifications=dict(DEFAULT_NOTIFICATIONS), referred_by=None, created_at=now, last_seen_at=now,
            )
        )  # fmt: skip
        audit = await self._s.scalar(select(func.count()).select_from(AuditRow).where(AuditRow.user_id == user_id))
        if audit:
            kept["audit_log"] = int(audit)
        return Erasure(deleted, kept)


async def staff_roles(session: AsyncSession, seeded: dict[int, Role] | None = None) -> dict[int, Role]:
    """Staff by stored role, plus seeded ids (ADMIN_IDS / SUPPORT_IDS) that have no user row yet."""
    rows = await session.execute(select(UserRow.id, UserRow.role).where(UserRow.role != Role.USER.value))
    roles = {int(uid): Role(role) for uid, role in rows if role in Role._value2member_map_}
    if seeded:
        known = set(await session.scalars(select(UserRow.id).where(UserRow.id.in_(list(seeded)))))
        roles.update({uid: role for uid, role in seeded.items() if uid not in known})
    return roles


class SqlAdminRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def find(self, ref: str) -> tuple[User, bool] | None:
        """By numeric id or @username (case-insensitive); with the is_blocked flag."""
        query = select(UserRow)
        text = ref.lstrip("@")
        user_id = parse_int(ref, low=-INT64_MAX, high=INT64_MAX)
        if user_id is not None:
            query = query.where(UserRow.id == user_id)
        elif looks_numeric(ref.removeprefix("-")):  # "²", or beyond any id a database holds: nobody
            return None
        elif text:
            query = query.where(func.lower(UserRow.username) == text.lower())
        else:
            return None
        row = (await self._s.scalars(query.limit(1))).first()
        return (_user(row), row.is_blocked) if row else None

    async def subscriptions(self, user_id: int) -> list[SubscriptionLine]:
        rows = await self._s.scalars(
            select(SubscriptionRow)
            .where(SubscriptionRow.user_id == user_id)
            .order_by(SubscriptionRow.id.desc())
            .limit(5)
        )
        return [SubscriptionLine(r.tier, r.status, r.rail, r.current_period_end) for r in rows]

    async def usage(self, user_id: int, since: datetime) -> dict[str, int]:
        rows = await self._s.execute(
            select(UsageEventRow.kind, UsageEventRow.name, func.sum(UsageEventRow.quantity))
            .where(UsageEventRow.user_id == user_id, UsageEventRow.at >= since)
            .group_by(UsageEventRow.kind, UsageEventRow.name)
        )
        return {f"{kind}:{name}": int(total) for kind, name, total in rows}

    async def counts(self, now: datetime) -> Counts:
        effective = case(
            (or_(UserRow.tier_expires_at.is_(None), UserRow.tier_expires_at > now), UserRow.tier), else_=literal(FREE)
        )
        by_tier = {
            str(t): int(n) for t, n in await self._s.execute(select(effective, func.count()).group_by(effective))
        }

        async def count(*where: Any) -> int:
            return int(await self._s.scalar(select(func.count()).select_from(UserRow).where(*where)) or 0)

        week, month = now - timedelta(days=7), now - timedelta(days=30)
        return Counts(
            by_tier=by_tier,
            total=sum(by_tier.values()),
            new_7d=await count(UserRow.created_at >= week),
            new_30d=await count(UserRow.created_at >= month),
            active_7d=await count(UserRow.last_seen_at >= week),
            active_30d=await count(UserRow.last_seen_at >= month),
            blocked=await count(UserRow.is_blocked.is_(True)),
        )

    async def paying_by_tier(self) -> dict[str, int]:
        rows = await self._s.execute(
            select(SubscriptionRow.tier, func.count(func.distinct(SubscriptionRow.user_id)))
            .where(SubscriptionRow.status.in_(PAYING_STATUSES), SubscriptionRow.rail.in_(PAYING_RAILS))
            .group_by(SubscriptionRow.tier)
        )
        return {str(t): int(n) for t, n in rows}

    async def lapsed_since(self, since: datetime) -> int:
        return int(
            await self._s.scalar(
                select(func.count(func.distinct(SubscriptionRow.user_id))).where(
                    SubscriptionRow.status.in_(LAPSED_STATUSES),
                    SubscriptionRow.rail.in_(PAYING_RAILS),
                    SubscriptionRow.updated_at >= since,
                )
            )
            or 0
        )

    async def errors_since(self, since: datetime, limit: int) -> list[tuple[str, int]]:
        n = func.count().label("n")
        rows = await self._s.execute(
            select(ErrorEventRow.code, n)
            .where(ErrorEventRow.at >= since)
            .group_by(ErrorEventRow.code)
            .order_by(n.desc())
            .limit(limit)
        )
        return [(str(code), int(count)) for code, count in rows]
