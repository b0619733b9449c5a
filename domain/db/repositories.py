"""SQLAlchemy repositories: rows in, dataclasses out. They never commit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.audit import AuditEntry, Surface
from domain.db.models import AuditRow, ErrorEventRow, TierRow, UsageEventRow, UserRow
from domain.errors import NotFound
from domain.metering import UsageEvent
from domain.tiers import Feature, Quota, Tier
from domain.users import Profile, Role, User

_USER_FIELDS = frozenset(
    {"language", "timezone", "notifications", "role", "tier", "tier_expires_at", "referred_by", "is_blocked"}
)


def _user(row: UserRow) -> User:
    return User(
        id=row.id,
        first_name=row.first_name,
        username=row.username,
        language=row.language,
        tg_language=row.tg_language,
        timezone=row.timezone,
        role=Role(row.role),
        tier=row.tier,
        tier_expires_at=row.tier_expires_at,
        referral_code=row.referral_code,
        referred_by=row.referred_by,
        notifications=dict(row.notifications or {}),
        created_at=row.created_at,
        last_seen_at=row.last_seen_at,
    )


class SqlUserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def get(self, user_id: int) -> User | None:
        row = await self._s.get(UserRow, user_id)
        return _user(row) if row else None

    async def add(self, user: User) -> bool:
        """Insert unless the id exists (two first updates may race); True when this call created it."""
        values = {
            "id": user.id,
            "first_name": user.first_name,
            "username": user.username,
            "language": user.language,
            "tg_language": user.tg_language,
            "timezone": user.timezone,
            "role": user.role.value,
            "tier": user.tier,
            "tier_expires_at": user.tier_expires_at,
            "referral_code": user.referral_code,
            "referred_by": user.referred_by,
            "notifications": user.notifications,
            "is_blocked": False,
            "created_at": user.created_at,
            "last_seen_at": user.last_seen_at,
        }
        insert_ = pg_insert if self._s.bind.dialect.name == "postgresql" else sqlite_insert
        result = await self._s.execute(insert_(UserRow).values(**values).on_conflict_do_nothing(index_elements=["id"]))
        return bool(result.rowcount)

    async def touch(self, user_id: int, seen_at: datetime, profile: Profile) -> None:
        values: dict[str, Any] = {
            "last_seen_at": seen_at,
            "first_name": profile.first_name[:128],
            "username": profile.username,
            "is_blocked": False,
        }
        if profile.language_code:
            values["tg_language"] = profile.language_code[:16]
        await self._s.execute(update(UserRow).where(UserRow.id == user_id).values(**values))

    async def update(self, user_id: int, **fields: object) -> User:
        unknown = set(fields) - _USER_FIELDS
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        row = await self._s.get(UserRow, user_id, with_for_update=True)
        if row is None:
            raise NotFound("user", user_id=user_id)
        for name, value in fields.items():
            setattr(row, name, value.value if isinstance(value, Role) else value)
        await self._s.flush()
        return _user(row)

    async def by_referral_code(self, code: str) -> User | None:
        row = (await self._s.execute(select(UserRow).where(UserRow.referral_code == code))).scalar_one_or_none()
        return _user(row) if row else None


class SqlAuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def append(self, entry: AuditEntry) -> None:
        self._s.add(
            AuditRow(
                at=entry.at or datetime.now(UTC),
                actor_id=entry.actor_id,
                user_id=entry.user_id,
                action=entry.action,
                surface=entry.surface.value,
                details=entry.details,
            )
        )

    async def for_user(self, user_id: int, limit: int = 20) -> list[AuditEntry]:
        rows = await self._s.scalars(
            select(AuditRow).where(AuditRow.user_id == user_id).order_by(AuditRow.id.desc()).limit(limit)
        )
        return [
            AuditEntry(r.action, r.actor_id, r.user_id, Surface(r.surface), dict(r.details), r.at, r.id) for r in rows
        ]


async def load_tiers(session: AsyncSession) -> list[Tier]:
    rows = await session.scalars(select(TierRow))
    return [
        Tier(
            code=r.code,
            rank=r.rank,
            price_cents=r.price_cents,
            price_stars=r.price_stars,
            rate_per_minute=r.rate_per_minute,
            burst=r.burst,
            quotas={Quota(k): int(v) for k, v in r.quotas.items() if k in Quota._value2member_map_},
            features=frozenset(Feature(f) for f in r.features if f in Feature._value2member_map_),
        )
        for r in rows
    ]


async def insert_usage(session: AsyncSession, events: list[UsageEvent]) -> None:
    """Insert a batch, skipping ids already stored (a retried batch counts once)."""
    ids = [e.id for e in events]
    existing = set((await session.scalars(select(UsageEventRow.id).where(UsageEventRow.id.in_(ids)))).all())
    rows = [
        {"id": e.id, "user_id": e.user_id, "kind": e.kind.value, "name": e.name, "quantity": e.quantity, "at": e.at}
        for e in events
        if e.id not in existing
    ]
    if rows:
        await session.execute(insert(UsageEventRow), rows)


async def usage_totals(
    session: AsyncSession, user_id: int, since: datetime, until: datetime
) -> dict[tuple[str, str], int]:
    result = await session.execute(
        select(UsageEventRow.kind, UsageEventRow.name, func.sum(UsageEventRow.quantity))
        .where(UsageEventRow.user_id == user_id, UsageEventRow.at >= since, UsageEventRow.at < until)
        .group_by(UsageEventRow.kind, UsageEventRow.name)
    )
    return {(kind, name): int(total) for kind, name, total in result}


async def add_error_event(session: AsyncSession, **values: Any) -> None:
    session.add(ErrorEventRow(**values))
