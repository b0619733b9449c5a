"""The unit of work: one lazily opened session per update (or per job).

Nothing touches the database until a repository is first used, so updates
that need no data (most /help presses) cost no connection at all.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from collections.abc import Callable
from types import TracebackType

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.db.agents import SqlAgentRepository
from domain.db.analytics import SqlEquityRepository
from domain.db.autotrade import SqlAutoTradeRepository
from domain.db.billing import SqlBillingRepository
from domain.db.broadcast import SqlBroadcastRepository
from domain.db.models import UsageEventRow
from domain.db.repositories import SqlAuditRepository, SqlUserRepository, insert_usage, usage_totals
from domain.db.support import SqlAdminRepository, SqlConsentRepository, SqlFeedbackRepository, SqlPersonalData, SqlTicketRepository
from domain.db.trading import SqlTradingRepository
from domain.metering import UsageEvent


class UnitOfWork:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._session: AsyncSession | None = None
        self._users: SqlUserRepository | None = None
        self._audit: SqlAuditRepository | None = None
        self._trading: SqlTradingRepository | None = None
        self._billing: SqlBillingRepository | None = None
        self._after_commit: list[Callable[[], None]] = []

    @property
    def session(self) -> AsyncSession:
        if self._session is None:
            self._session = self._sessionmaker()
        return self._session

    @property
    def users(self) -> SqlUserRepository:
        if self._users is None:
            self._users = SqlUserRepository(self.session)
        return self._users

    @property
    def audit(self) -> SqlAuditRepository:
        if self._audit is None:
            self._audit = SqlAuditRepository(self.session)
        return self._audit

    @property
    def billing(self) -> SqlBillingRepository:
        if self._billing is None:
            self._billing = SqlBillingRepository(self.session)
        return self._billing

    @property
    def trading(self) -> SqlTradingRepository:
        if self._trading is None:
            self._trading = SqlTradingRepository(self.session)
        return self._trading

    @property
    def tickets(self) -> SqlTicketRepository:  # support (0004): stateless wrappers, built on use
        return SqlTicketRepository(self.session)

    @property
    def feedback(self) -> SqlFeedbackRepository:
        return SqlFeedbackRepository(self.session)

    @property
    def consents(self) -> SqlConsentRepository:
        return SqlConsentRepository(self.session)

    @property
    def personal_data(self) -> SqlPersonalData:
        return SqlPersonalData(self.session)

    @property
    def admin(self) -> SqlAdminRepository:
        return SqlAdminRepository(self.session)

    @property
    def broadcasts(self) -> SqlBroadcastRepository:
        return SqlBroadcastRepository(self.session)

    @property
    def equity(self) -> SqlEquityRepository:  # analytics (0007): stateless wrapper, built on use
        return SqlEquityRepository(self.session)

    @property
    def agents(self) -> SqlAgentRepository:  # agents (0005): stateless wrapper, built on use
        return SqlAgentRepository(self.session)

    @property
    def autotrade(self) -> SqlAutoTradeRepository:  # auto-trading (0006): stateless wrapper, built on use
        return SqlAutoTradeRepository(self.session)

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once the next commit succeeded (e.g. wake the sender of a queued message)."""
        self._after_commit.append(callback)

    async def commit(self) -> None:
        if self._session is not None:
            await self._session.commit()
        callbacks, self._after_commit = self._after_commit, []
        for callback in callbacks:
            callback()

    async def rollback(self) -> None:
        self._after_commit.clear()
        if self._session is not None:
            await self._session.rollback()

    async def close(self) -> None:
        """End the unit: anything not committed is rolled back."""
        if self._session is not None:
            session, self._session = self._session, None
            self._users = self._audit = None
            self._trading = None
            self._billing = None
            await session.close()

    async def __aenter__(self) -> UnitOfWork:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class SqlUsageStore:
    """The meter's store: writes each batch in its own short transaction."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def write(self, events: list[UsageEvent]) -> None:
        async with self._sessionmaker() as session:
            await insert_usage(session, events)
            await session.commit()

    async def totals(self, user_id: int, since: datetime, until: datetime) -> dict[tuple[str, str], int]:
        async with self._sessionmaker() as session:
            return await usage_totals(session, user_id, since, until)

    async def claim(self, event: UsageEvent, since: datetime, limit: int) -> int | None:
        """Count and record under a per-(user, kind, name) lock: PostgreSQL's transaction-scoped
        advisory lock across processes (SQLite serves one process, whose claims the meter serializes)."""
        async with self._sessionmaker() as session, session.begin():
            if session.bind.dialect.name == "postgresql":
                key = f"usage:{event.user_id}:{event.kind.value}:{event.name}".encode()
                lock = int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big", signed=True)
                await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
            used = (await usage_totals(session, event.user_id, since, event.at + timedelta(microseconds=1))).get(
                (event.kind.value, event.name), 0
            )
            if used + event.quantity > limit:
                return None
            await insert_usage(session, [event])
            return used + event.quantity

    async def refund(self, event_id: str) -> None:
        async with self._sessionmaker() as session, session.begin():
            await session.execute(delete(UsageEventRow).where(UsageEventRow.id == event_id))
