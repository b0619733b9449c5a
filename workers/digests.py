"""Performance digests: each trader's day (and week) in one message, at their local evening.

A scheduler job (workers/scheduler.py) runs every few minutes. A user gets a
digest when: they traded in the last ``ACTIVE_DAYS`` days, their tier has
the analytics feature, the digest switch in /config is on, their local time
is past ``DAILY_HOUR`` (weekly: on ``WEEKLY_DAY`` past ``WEEKLY_HOUR``), and
the period has something to show. The outbox key (``digest:perf:day:<user>:<local
date>``) is the "already sent" record: a digest goes once per user and period,
whichever process leads and however often the job runs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from aiogram.utils.i18n import I18n
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.notify import Notifier
from bot.views.digests import performance_digest
from domain.analytics.metrics import Period
from domain.analytics.service import AnalyticsService
from domain.clock import Clock, utcnow
from domain.db.models import OrderRow
from domain.db.outbox import SqlOutboxRepository
from domain.db.uow import UnitOfWork
from domain.tiers import Feature, TierCatalog
from domain.users import Notify

log = logging.getLogger(__name__)

ACTIVE_DAYS = 35
DAILY_HOUR = 21  # local time from which the day's digest may go
WEEKLY_DAY = 6  # Sunday (Monday is 0)
WEEKLY_HOUR = 18
EVERY = 600.0  # seconds between runs


def due(local: datetime, user_id: int) -> list[tuple[Period, str]]:
    """The digests due at this local time, with their outbox keys."""
    found: list[tuple[Period, str]] = []
    if local.hour >= DAILY_HOUR:
        found.append((Period.TODAY, f"digest:perf:day:{user_id}:{local.date().isoformat()}"))
    if local.weekday() == WEEKLY_DAY and local.hour >= WEEKLY_HOUR:
        year, week, _ = local.isocalendar()
        found.append((Period.WEEK, f"digest:perf:week:{user_id}:{year}-W{week:02d}"))
    return found


class PerformanceDigests:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        analytics: AnalyticsService,
        tiers: TierCatalog,
        i18n: I18n,
        notifier: Notifier,
        *,
        clock: Clock = utcnow,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._analytics = analytics
        self._tiers = tiers
        self._i18n = i18n
        self._notifier = notifier
        self._clock = clock

    async def traders(self, now: datetime) -> list[int]:
        async with self._sessionmaker() as session:
            since = now - timedelta(days=ACTIVE_DAYS)
            return sorted(
                await session.scalars(select(OrderRow.user_id).where(OrderRow.created_at >= since).distinct())
            )

    async def run(self) -> int:
        """Queue every digest due now; returns how many were queued."""
        now = self._clock()
        queued = 0
        for user_id in await self.traders(now):
            try:
                queued += await self._user(user_id, now)
            except Exception:  # one account's gateway being down must not stop the others
                log.warning("digest for %s skipped this round", user_id, exc_info=True)
        return queued

    async def _user(self, user_id: int, now: datetime) -> int:
        queued = 0
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            if user is None or not user.wants(Notify.DIGEST):
                return 0
            tier = self._tiers.get(user.effective_tier(now))
            if not tier.has(Feature.ANALYTICS):
                return 0
            local = now.astimezone(ZoneInfo(user.timezone))
            for period, key in due(local, user_id):
                if await SqlOutboxRepository(uow.session).get(key) is not None:
                    continue  # already queued (or sent)
                report = await self._analytics.report(uow, user_id, tier, period, tz=user.timezone)
                if report.empty:
                    continue
                with self._i18n.context(), self._i18n.use_locale(user.locale):
                    text, markup = performance_digest(report, tier.code, weekly=period is Period.WEEK)
                queued += await self._notifier.send(user_id, text, markup, key=key)
        return queued
