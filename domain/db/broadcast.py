"""Broadcasts and their outbox. Repositories never commit: the sender commits each step on its own."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from domain.broadcast import Broadcast, Delivery, Draft, Segment, Status, segment_since
from domain.db.models import BroadcastRow, OutboxRow, UserRow
from domain.tiers import FREE


def _broadcast(row: BroadcastRow) -> Broadcast:
    return Broadcast(
        id=row.id,
        admin_id=row.admin_id,
        text=row.text,
        photo_file_id=row.photo_file_id,
        button_text=row.button_text,
        button_url=row.button_url,
        segment=Segment.from_json(row.segment or {}),
        status=Status(row.status),
        progress_message_id=row.progress_message_id,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def _recipients(segment: Segment, now: datetime) -> Any:
    query = select(UserRow.id).where(UserRow.is_blocked.is_(False))
    if segment.tier is not None:
        effective = case(
            (or_(UserRow.tier_expires_at.is_(None), UserRow.tier_expires_at > now), UserRow.tier), else_=literal(FREE)
        )
        query = query.where(effective == segment.tier)
    if segment.language is not None:
        query = query.where(
            or_(
                UserRow.language == segment.language,
                (UserRow.language.is_(None)) & (func.lower(func.substr(UserRow.tg_language, 1, 2)) == segment.language),
            )
        )
    since = segment_since(segment, now)
    if since is not None:
        query = query.where(UserRow.last_seen_at >= since)
    return query


class SqlBroadcastRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def create(self, admin_id: int, draft: Draft, now: datetime) -> Broadcast:
        row = BroadcastRow(
            admin_id=admin_id, text=draft.text, photo_file_id=draft.photo_file_id, button_text=draft.button_text,
            button_url=draft.button_url, segment=draft.segment.to_json(), status=Status.DRAFT.value,
            progress_message_id=None, created_at=now, finished_at=None,
        )  # fmt: skip
        self._s.add(row)
        await self._s.flush()
        return _broadcast(row)

    async def get(self, broadcast_id: int, *, for_update: bool = False) -> Broadcast | None:
        row = await self._s.get(BroadcastRow, broadcast_id, with_for_update=for_update or None)
        return _broadcast(row) if row else None

    async def set(self, broadcast_id: int, **fields: object) -> None:
        await self._s.execute(update(BroadcastRow).where(BroadcastRow.id == broadcast_id).values(**fields))

    async def audience(self, segment: Segment, now: datetime) -> int:
        subquery = _recipients(segment, now).subquery()
        return int(await self._s.scalar(select(func.count()).select_from(subquery)) or 0)

    async def fill(self, broadcast_id: int, segment: Segment, now: datetime) -> int:
        """One pending row per recipient, in one statement (the unique key forbids a second row per user)."""
        source = _recipients(segment, now).add_columns(
            literal(broadcast_id).label("broadcast_id"), literal(Delivery.PENDING.value).label("status"),
            literal(now, type_=OutboxRow.__table__.c.updated_at.type).label("updated_at"),
        )  # fmt: skip
        await self._s.execute(
            insert(OutboxRow).from_select(["user_id", "broadcast_id", "status", "updated_at"], source)
        )
        return await self.total(broadcast_id)

    async def total(self, broadcast_id: int) -> int:
        return int(
            await self._s.scalar(
                select(func.count()).select_from(OutboxRow).where(OutboxRow.broadcast_id == broadcast_id)
            )
            or 0
        )

    async def counts(self, broadcast_id: int) -> dict[str, int]:
        rows = await self._s.execute(
            select(OutboxRow.status, func.count())
            .where(OutboxRow.broadcast_id == broadcast_id)
            .group_by(OutboxRow.status)
        )
        return {str(status): int(n) for status, n in rows}

    # --- the sender's steps ---

    async def sending(self) -> list[Broadcast]:
        rows = await self._s.scalars(
            select(BroadcastRow).where(BroadcastRow.status == Status.SENDING.value).order_by(BroadcastRow.id)
        )
        return [_broadcast(r) for r in rows]

    async def recover(self, broadcast_id: int, now: datetime) -> int:
        """Rows claimed by a sender that died: maybe delivered, so never resent."""
        result = await self._s.execute(
            update(OutboxRow)
            .where(OutboxRow.broadcast_id == broadcast_id, OutboxRow.status == Delivery.CLAIMED.value)
            .values(status=Delivery.UNKNOWN.value, updated_at=now)
        )
        return int(result.rowcount or 0)

    async def claim_next(self, broadcast_id: int, now: datetime) -> tuple[int, int] | None:
        """The next pending row, claimed in one conditional UPDATE … RETURNING (never claimed twice)."""
        outbox = OutboxRow.__table__
        while True:
            next_id = (
                select(outbox.c.id)
                .where(outbox.c.broadcast_id == broadcast_id, outbox.c.status == Delivery.PENDING.value)
                .order_by(outbox.c.id)
                .limit(1)
                .scalar_subquery()
            )
            row = (
                await self._s.execute(
                    update(outbox)
                    .where(outbox.c.id == next_id, outbox.c.status == Delivery.PENDING.value)
                    .values(status=Delivery.CLAIMED.value, updated_at=now)
                    .returning(outbox.c.id, outbox.c.user_id)
                )
            ).first()
            if row is not None:
                return int(row.id), int(row.user_id)
            pending = select(outbox.c.id).where(
                outbox.c.broadcast_id == broadcast_id, outbox.c.status == Delivery.PENDING.value
            )
            if await self._s.scalar(pending.limit(1)) is None:
                return None

    async def mark(self, outbox_id: int, status: Delivery, now: datetime) -> None:
        outbox = OutboxRow.__table__
        await self._s.execute(
            update(outbox).where(outbox.c.id == outbox_id).values(status=status.value, updated_at=now)
        )

    async def mark_blocked_user(self, user_id: int) -> None:
        users = UserRow.__table__
        await self._s.execute(update(users).where(users.c.id == user_id).values(is_blocked=True))
