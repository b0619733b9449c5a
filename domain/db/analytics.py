"""Equity history: snapshots per account, series reads and the tier-wide returns for the benchmark.

Never commits: the use case (or the recorder job) does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
from sqlalchemy import and_, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db.models import EquitySnapshotRow, TradingAccountRow, UserRow

T = EquitySnapshotRow


@dataclass(frozen=True, slots=True)
class EquitySnapshot:
    user_id: int
    kind: str
    login: int
    ts: int  # epoch seconds
    balance: float
    equity: float


class SqlEquityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, snapshots: Sequence[EquitySnapshot]) -> int:
        """Insert snapshots; one already recorded for the same account and second is kept. Returns inserted."""
        if not snapshots:
            return 0
        insert_: Any = pg_insert if self._s.bind.dialect.name == "postgresql" else sqlite_insert
        stmt = insert_(T).values(
            [
                {"user_id": s.user_id, "kind": s.kind, "login": s.login, "ts": s.ts,
                 "balance": round(s.balance, 2), "equity": round(s.equity, 2)}
                for s in snapshots
            ]
        ).on_conflict_do_nothing(index_elements=["user_id", "login", "ts"])  # fmt: skip
        result = await self._s.execute(stmt)
        return max(int(result.rowcount or 0), 0)

    async def series(self, user_id: int, login: int, since: int | None, until: int) -> list[tuple[int, float]]:
        """``(ts, equity)`` oldest first, within ``[since, until]``."""
        times, values = await self.series_arrays(user_id, login, since, until)
        return list(zip(times.tolist(), values.tolist(), strict=True))

    async def series_arrays(
        self, user_id: int, login: int, since: int | None = None, until: int | None = None, *, after: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Times (int64) and equities (float64), oldest first, within ``[since, until]`` (and ``> after``).

        Two narrow columns through Core, flattened straight into numpy: no ORM objects, no per-row tuples kept.
        """
        cond = [T.user_id == user_id, T.login == login]
        if since is not None:
            cond.append(T.ts >= since)
        if until is not None:
            cond.append(T.ts <= until)
        if after is not None:
            cond.append(T.ts > after)
        conn = await self._s.connection()
        rows = (await conn.execute(select(T.ts, T.equity).where(*cond).order_by(T.ts))).all()
        flat = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=2 * len(rows)).reshape(-1, 2)
        return flat[:, 0].astype(np.int64), np.ascontiguousarray(flat[:, 1])

    async def stamp(self, user_id: int, login: int) -> tuple[int, int]:
        """``(rows, latest ts)`` of one account's history: a cheap change token (index-only on the unique key)."""
        conn = await self._s.connection()
        row = (await conn.execute(select(func.count(), func.max(T.ts)).where(T.user_id == user_id, T.login == login))).one()
        return int(row[0]), int(row[1] or 0)

    async def last_before(self, user_id: int, login: int, ts: int) -> tuple[int, float] | None:
        row = (
            await self._s.execute(
                select(T.ts, T.equity)
                .where(T.user_id == user_id, T.login == login, T.ts < ts)
                .order_by(T.ts.desc())
                .limit(1)
            )
        ).first()
        return (int(row[0]), float(row[1])) if row else None

    async def tier_returns(self, tier: str, since: int | None) -> list[float]:
        """Return % between the first and last snapshot in the period, one per user of the tier."""
        cond = [UserRow.tier == tier]
        if since is not None:
            cond.append(T.ts >= since)
        span = (
            select(T.user_id, T.login, func.min(T.ts).label("t0"), func.max(T.ts).label("t1"))
            .join(UserRow, UserRow.id == T.user_id)
            .where(*cond)
            .group_by(T.user_id, T.login)
            .having(func.max(T.ts) > func.min(T.ts))
            .subquery()
        )
        first, last = T.__table__.alias("first"), T.__table__.alias("last")
        rows = await self._s.execute(
            select(span.c.user_id, first.c.equity, last.c.equity)
            .join(
                first, and_(first.c.user_id == span.c.user_id, first.c.login == span.c.login, first.c.ts == span.c.t0)
            )
            .join(last, and_(last.c.user_id == span.c.user_id, last.c.login == span.c.login, last.c.ts == span.c.t1))
            .order_by(span.c.user_id)
        )
        out: dict[int, float] = {}
        for user_id, e0, e1 in rows.all():
            if user_id not in out and e0 and e0 > 0:
                out[int(user_id)] = (float(e1) - float(e0)) / float(e0) * 100
        return list(out.values())

    async def traders(self, after: int, limit: int) -> list[tuple[int, str]]:
        """``(user_id, tier code)`` of users with a trading account, ids above ``after``, ascending (paging)."""
        rows = await self._s.execute(
            select(UserRow.id, UserRow.tier)
            .where(UserRow.id > after, UserRow.id.in_(select(TradingAccountRow.user_id)))
            .order_by(UserRow.id)
            .limit(limit)
        )
        return [(int(uid), str(tier)) for uid, tier in rows.all()]
