"""The MT5 terminal pool's leases (``mt5_terminals``): one bridge endpoint per live (login, server).

Every replica and worker leases through these rows, so they all agree on which terminal
serves which account. A lease is a compare-and-set: ``UPDATE … WHERE endpoint = ? AND
<still free>``; on PostgreSQL a concurrent UPDATE of the same row waits for the first to
commit and then finds it taken (0 rows), on SQLite writers are serialized. The unique
constraint on (login, server) stops two endpoints being leased to one account at once.
Runs its own short transactions, like :class:`~domain.db.trading.SqlDemoStore`.
The server is kept case-folded: "Broker-Live" and "broker-live" are one account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.admin import PoolFigures
from domain.audit import AuditEntry
from domain.db.models import TerminalRow, TradingAccountRow
from domain.db.repositories import SqlAuditRepository
from domain.db.trading import _insert
from domain.trading.models import AccountKind, AccountTaken, NoFreeTerminal

FREE, LEASED, UNHEALTHY = "free", "leased", "unhealthy"
# An unhealthy terminal is offered again after this long (the per-call login check guards it).
UNHEALTHY_COOLDOWN = timedelta(minutes=10)
# A lease with no linked account behind it (a link that crashed half-way) is reclaimed after this long.
ORPHAN_AFTER = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Lease:
    endpoint: str
    login: int
    server: str  # case-folded
    user_id: int | None
    fresh: bool = False  # leased by this call (a failed link gives it back)


def account_key(server: str) -> str:
    return server.strip().casefold()


class SqlTerminalStore:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], *, cooldown: timedelta = UNHEALTHY_COOLDOWN,
        orphan_after: timedelta = ORPHAN_AFTER,
    ) -> None:  # fmt: skip
        self._sessionmaker = sessionmaker
        self._cooldown = cooldown
        self._orphan_after = orphan_after

    async def sync(self, endpoints: Sequence[str], now: datetime) -> None:
        """Make sure every configured endpoint has its row (free unless known)."""
        if not endpoints:
            return
        async with self._sessionmaker() as s, s.begin():
            await s.execute(
                _insert(s)(TerminalRow)
                .values([{"endpoint": e, "status": FREE, "updated_at": now} for e in endpoints])
                .on_conflict_do_nothing(index_elements=["endpoint"])
            )

    async def find(self, login: int, server: str) -> Lease | None:
        async with self._sessionmaker() as s:
            row = await s.scalar(
                select(TerminalRow).where(TerminalRow.login == login, TerminalRow.server == account_key(server))
            )
        return None if row is None else Lease(row.endpoint, login, account_key(server), row.user_id)

    def _takeable(self, now: datetime) -> Any:
        """A row this lease may take: free, unhealthy past its cooldown, or an orphaned lease."""
        linked = exists().where(
            TradingAccountRow.kind == AccountKind.LIVE.value,
            TradingAccountRow.user_id == TerminalRow.user_id,
            TradingAccountRow.login == TerminalRow.login,
            func.lower(TradingAccountRow.server) == TerminalRow.server,
        )
        return or_(
            and_(TerminalRow.status == FREE, TerminalRow.login.is_(None)),
            and_(TerminalRow.status == UNHEALTHY, TerminalRow.updated_at < now - self._cooldown),
            and_(TerminalRow.status == LEASED, TerminalRow.leased_at < now - self._orphan_after, ~linked),
        )

    async def lease(self, endpoints: Sequence[str], user_id: int, login: int, server: str, now: datetime) -> Lease:
        """The endpoint serving (login, server), leased to it now if it had none.

        AccountTaken when another user holds it; NoFreeTerminal when every endpoint is taken."""
        key = account_key(server)
        for _ in range(3):  # a lost race for this very account: read the winner's lease
            held = await self.find(login, key)
            if held is not None:
                if held.user_id not in (None, user_id):
                    raise AccountTaken("leased to another user")
                if held.endpoint in endpoints:
                    return held
                await self.release(login, key)  # an endpoint no longer configured: lease anew
            async with self._sessionmaker() as s:
                candidates = list(
                    await s.scalars(
                        select(TerminalRow.endpoint)
                        .where(TerminalRow.endpoint.in_(list(endpoints)), self._takeable(now))
                        .order_by((TerminalRow.status != FREE), TerminalRow.endpoint)
                    )
                )
            try:
                for endpoint in candidates:
                    async with self._sessionmaker() as s, s.begin():
                        taken = await s.execute(
                            update(TerminalRow)
                            .where(TerminalRow.endpoint == endpoint, self._takeable(now))
                            .values(status=LEASED, login=login, server=key, user_id=user_id, leased_at=now,
                                    updated_at=now)  # fmt: skip
                            .execution_options(synchronize_session=False)
                        )
                    if taken.rowcount == 1:
                        return Lease(endpoint, login, key, user_id, fresh=True)
            except IntegrityError:  # (login, server) leased elsewhere meanwhile
                continue
            raise NoFreeTerminal("every terminal is leased")
        raise NoFreeTerminal("lease kept racing")

    async def release(self, login: int, server: str, user_id: int | None = None) -> str | None:
        """Give back the endpoint of (login, server) (only ``user_id``'s, when given); returns it."""
        key = account_key(server)
        async with self._sessionmaker() as s, s.begin():
            where = [TerminalRow.login == login, TerminalRow.server == key]
            if user_id is not None:
                where.append(or_(TerminalRow.user_id == user_id, TerminalRow.user_id.is_(None)))
            endpoint = await s.scalar(select(TerminalRow.endpoint).where(*where))
            if endpoint is None:
                return None
            await s.execute(
                update(TerminalRow).where(TerminalRow.endpoint == endpoint)
                .values(status=FREE, login=None, server=None, user_id=None, leased_at=None, updated_at=datetime.now(UTC))
                .execution_options(synchronize_session=False)
            )  # fmt: skip
        return endpoint

    async def mark_unhealthy(self, endpoint: str, audit: AuditEntry | None, now: datetime) -> None:
        """Take ``endpoint`` out of the pool (its account leases another one on next use), audited."""
        async with self._sessionmaker() as s, s.begin():
            await s.execute(
                update(TerminalRow).where(TerminalRow.endpoint == endpoint)
                .values(status=UNHEALTHY, login=None, server=None, user_id=None, leased_at=None, updated_at=now)
                .execution_options(synchronize_session=False)
            )  # fmt: skip
            if audit is not None:
                await SqlAuditRepository(s).append(audit)

    async def audit(self, entry: AuditEntry) -> None:
        async with self._sessionmaker() as s, s.begin():
            await SqlAuditRepository(s).append(entry)

    async def figures(self, endpoints: Sequence[str]) -> PoolFigures:
        async with self._sessionmaker() as s:
            rows = (
                await s.execute(
                    select(TerminalRow.status, func.count())
                    .where(TerminalRow.endpoint.in_(list(endpoints)))
                    .group_by(TerminalRow.status)
                )
            ).all()
        counts = {status: int(n) for status, n in rows}
        leased, unhealthy = counts.get(LEASED, 0), counts.get(UNHEALTHY, 0)
        return PoolFigures(len(endpoints), leased, len(endpoints) - leased - unhealthy, unhealthy)
