"""The notification outbox's repository (domain/outbox.py). It never commits: callers commit each step."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db.models import NotificationRow, UserRow
from domain.outbox import FINISHED, MAX_ERROR, WAITING, Depth, Kind, Message, Status, normalize_key

_table = NotificationRow.__table__


def _message(row: NotificationRow) -> Message:
    kind = Kind(row.kind) if row.kind in Kind._value2member_map_ else Kind.OTHER
    return Message(row.key, row.user_id, row.text, kind, row.markup, row.id, row.attempts)


class SqlOutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, message: Message, now: datetime) -> bool:
        """Queue a message; False (nothing stored) when its key is already in the outbox."""
        values = {
            "key": normalize_key(message.key), "user_id": message.chat_id, "kind": message.kind.value,
            "text": message.text, "markup": message.markup, "status": Status.PENDING.value, "attempts": 0,
            "next_attempt_at": now, "error": None, "created_at": now, "claimed_at": None, "sent_at": None,
        }  # fmt: skip
        dialect = postgresql if self._s.bind.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(_table).values(**values).on_conflict_do_nothing(index_elements=["key"])
        result = await self._s.execute(stmt)
        return bool(result.rowcount)

    async def is_blocked(self, user_id: int) -> bool:
        return bool(await self._s.scalar(select(UserRow.is_blocked).where(UserRow.id == user_id)))

    async def get(self, key: str) -> tuple[Message, Status] | None:
        row = await self._s.scalar(select(NotificationRow).where(NotificationRow.key == normalize_key(key)))
        return (_message(row), Status(row.status)) if row else None

    # --- the sender's steps ---

    async def candidates(self, now: datetime, limit: int, skip_chats: Collection[int] = ()) -> list[tuple[int, int]]:
        """(id, chat id) of due pending rows, oldest first, none for ``skip_chats``; on PostgreSQL rows another
        sender is claiming right now are skipped (FOR UPDATE SKIP LOCKED; SQLite has one writer anyway)."""
        query = select(_table.c.id, _table.c.user_id).where(
            _table.c.status == Status.PENDING.value, _table.c.next_attempt_at <= now
        )
        if skip_chats:
            query = query.where(_table.c.user_id.not_in(list(skip_chats)))
        rows = await self._s.execute(query.order_by(_table.c.id).limit(limit).with_for_update(skip_locked=True))
        return [(int(i), int(u)) for i, u in rows]

    async def claim(self, outbox_id: int, now: datetime) -> Message | None:
        """pending → sending in one conditional UPDATE (never claimed twice); None when someone else was first."""
        row = (
            await self._s.execute(
                update(_table)
                .where(_table.c.id == outbox_id, _table.c.status == Status.PENDING.value)
                .values(status=Status.SENDING.value, attempts=_table.c.attempts + 1, claimed_at=now)
                .returning(*_table.c)
            )
        ).first()
        if row is None:
            return None
        kind = Kind(row.kind) if row.kind in Kind._value2member_map_ else Kind.OTHER
        return Message(row.key, int(row.user_id), row.text, kind, row.markup, int(row.id), int(row.attempts))

    async def finish(self, outbox_id: int, status: Status, now: datetime, error: str | None = None) -> None:
        values: dict[str, object] = {"status": status.value, "error": error[:MAX_ERROR] if error else None}
        if status is Status.SENT:
            values["sent_at"] = now
        await self._s.execute(
            update(_table).where(_table.c.id == outbox_id, _table.c.status == Status.SENDING.value).values(**values)
        )

    async def retry(self, outbox_id: int, at: datetime, error: str) -> None:
        await self._s.execute(
            update(_table)
            .where(_table.c.id == outbox_id, _table.c.status == Status.SENDING.value)
            .values(status=Status.PENDING.value, next_attempt_at=at, error=error[:MAX_ERROR])
        )

    async def defer_chat(self, chat_id: int, at: datetime) -> None:
        """A chat's own flood wait: its pending rows wait too, in order."""
        await self._s.execute(
            update(_table)
            .where(_table.c.user_id == chat_id, _table.c.status == Status.PENDING.value, _table.c.next_attempt_at < at)
            .values(next_attempt_at=at)
        )

    async def block_user(self, user_id: int) -> int:
        """The user blocked the bot: flag them and drop what still waits for them; returns rows dropped."""
        await self._s.execute(update(UserRow).where(UserRow.id == user_id).values(is_blocked=True))
        result = await self._s.execute(
            update(_table)
            .where(_table.c.user_id == user_id, _table.c.status == Status.PENDING.value)
            .values(status=Status.BLOCKED.value, error="user blocked the bot")
        )
        return int(result.rowcount or 0)

    async def recover(self, claimed_before: datetime) -> int:
        """Rows a dead sender left in flight: maybe delivered, so never resent."""
        result = await self._s.execute(
            update(_table)
            .where(_table.c.status == Status.SENDING.value, _table.c.claimed_at < claimed_before)
            .values(status=Status.UNKNOWN.value, error="in flight when its sender stopped")
        )
        return int(result.rowcount or 0)

    # --- figures and housekeeping ---

    async def depth(self) -> Depth:
        waiting, oldest = (
            await self._s.execute(
                select(func.count(), func.min(_table.c.created_at)).where(_table.c.status.in_(WAITING))
            )
        ).one()
        return Depth(int(waiting or 0), oldest)

    async def counts(self, keys: Sequence[str] | None = None) -> dict[str, int]:
        query = select(_table.c.status, func.count()).group_by(_table.c.status)
        if keys is not None:
            query = query.where(_table.c.key.in_([normalize_key(k) for k in keys]))
        return {str(s): int(n) for s, n in await self._s.execute(query)}

    async def purge(self, finished_before: datetime) -> int:
        """Delete finished rows created before the cut-off (data retention)."""
        result = await self._s.execute(
            delete(_table).where(_table.c.status.in_(FINISHED), _table.c.created_at < finished_before)
        )
        return int(result.rowcount or 0)


async def notification_outbox(session: AsyncSession) -> tuple[int, datetime | None]:
    """The ops monitor's probe (bot/observability.py OutboxProbe): depth and the oldest waiting row."""
    depth = await SqlOutboxRepository(session).depth()
    return depth.waiting, depth.oldest
