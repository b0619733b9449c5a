"""Hourly equity snapshots of every trader's active account (the equity history behind /performance).

Each round walks the users who have a trading account, page by page, and
stores balance and equity of the account each one uses, stamped with the hour
(``ts`` floored to ``every``): a second worker process (or a retry) recording
the same hour inserts nothing, so no leader is needed. One failing account
(a live gateway down) is logged and skipped. History before the first
snapshot is reconstructed from the deals by the report itself.
"""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.analytics.service import AnalyticsService
from domain.db.analytics import EquitySnapshot
from domain.db.uow import UnitOfWork
from domain.errors import DomainError
from domain.tiers import TierCatalog
from domain.trading.market import market_errors

log = logging.getLogger(__name__)

EVERY = 3600.0
PAGE = 200


class EquityRecorder:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        analytics: AnalyticsService,
        tiers: TierCatalog,
        *,
        every: float = EVERY,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._analytics = analytics
        self._tiers = tiers
        self.every = every

    async def record_all(self) -> int:
        """One round; returns how many snapshots were stored."""
        stamp = int(self._analytics.now().timestamp() // self.every * self.every)
        stored, after = 0, 0
        while True:
            async with UnitOfWork(self._sessionmaker) as uow:
                page = await uow.equity.traders(after, PAGE)
            if not page:
                return stored
            after = page[-1][0]
            snapshots = [snap for uid, tier in page if (snap := await self._snapshot(uid, tier, stamp)) is not None]
            async with UnitOfWork(self._sessionmaker) as uow:
                stored += await uow.equity.add(snapshots)
                await uow.commit()

    async def _snapshot(self, user_id: int, tier: str, stamp: int) -> EquitySnapshot | None:
        try:
            async with UnitOfWork(self._sessionmaker) as uow:
                account, gw = await self._analytics.trading.active(uow, user_id, self._tiers.get(tier))
                async with market_errors():
                    info = await gw.account()
        except DomainError as exc:  # e.g. a live account after a downgrade: nothing to record this hour
            log.info("no equity snapshot for one account: %s", exc.code)
            return None
        except Exception:  # one account's gateway must not stop the round
            log.warning("equity snapshot failed for one account", exc_info=True)
            return None
        return EquitySnapshot(user_id, account.kind.value, account.login, stamp, info.balance, info.equity)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.record_all()
            except Exception:
                log.exception("equity snapshot round failed; retrying next round")
            await asyncio.sleep(self.every)
