"""The scheduler: periodic jobs (apscheduler), run by exactly one process of the deployment.

Every process that runs workers competes for the ``leader:scheduler`` lease
(domain/leader.py): the holder starts an ``AsyncIOScheduler`` with the jobs
below, the others wait; when the leader stops (its lease is released at once)
or dies (its lease expires after ``LEASE_TTL``) another takes over. Without
Redis there is one process and it leads. Every job is idempotent (a state
transition or a unique key guards each effect), so the few seconds of overlap a
paused leader could cause do no harm.

Jobs
- ``billing``: trial and renewal reminders, missed renewals, grace periods,
  expiries (BillingService.run_due_jobs; its notices go through the outbox)
  and the Stripe meter sync of AI-analysis overage (report_overage). 60 s.
- ``outbox-recover``: rows left in flight by a dead sender become ``unknown``
  (domain/outbox.py). 60 s.
- ``retention``: deletes old data, hourly: finished outbox rows after
  ``outbox.KEEP_FINISHED`` (14 days), usage events after ``KEEP_USAGE``
  (180 days: quotas need a day, the Stripe overage look-back a few, /admin
  and analytics half a year) with their meter-report marks, ErrorDNA events
  after ``KEEP_ERRORS`` (90 days: long enough for a user to quote a reference
  id to support), applied payment-inbox rows after ``KEEP_APPLIED_PAYMENTS``
  (90 days: the payment itself stays in ``payments``; the raw update holds the payer's name), and
  per-bar agent votes after ``KEEP_VOTES`` (30 days: the agents page shows the last bars; the weights'
  history is kept in the agents' stats). A payment still waiting in the inbox is never removed.
- ``reconcile``: orders whose outcome is unknown (no answer from the terminal,
  or a process that died mid-send) are looked up in the terminal and settled
  once, and their users told (domain/trading/reconcile.py). At start-up, then
  every 30 s.
- ``payment-inbox``: applies Stars payments and refunds received but not applied by their own update
  (BillingService.retry_inbox). 30 s.
- ``performance-digests``: each trader's daily (and, on Sundays, weekly)
  performance at their local evening (workers/digests.py). 10 min.

The agent runner (a worker of its own) sends the daily signal digests itself
after each pass, de-duplicated per user and local day.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from sqlalchemy import delete

from domain.clock import Clock, utcnow
from domain.db.models import AgentVoteRow, ErrorEventRow, MeterReportRow, PaymentInboxRow, UsageEventRow
from domain.db.outbox import SqlOutboxRepository
from domain.leader import Lease, lead
from domain.outbox import KEEP_FINISHED, STALE_CLAIM
from workers.digests import EVERY as DIGESTS_EVERY
from domain.trading.reconcile import EVERY as RECONCILE_EVERY
from workers.digests import PerformanceDigests

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

LEASE_TTL = 15.0
KEEP_USAGE = timedelta(days=180)
KEEP_ERRORS = timedelta(days=90)
KEEP_APPLIED_PAYMENTS = timedelta(days=90)
KEEP_VOTES = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Job:
    name: str
    every: float  # seconds
    run: Callable[[], Awaitable[Any]]


class Scheduler:
    def __init__(self, redis: Redis | None, jobs: list[Job], *, ttl: float = LEASE_TTL) -> None:
        self.jobs = jobs
        self.lease = Lease(redis, "scheduler", ttl=ttl)
        self.leading = asyncio.Event()
        self.runs: dict[str, int] = {job.name: 0 for job in jobs}

    async def run_forever(self) -> None:
        await lead(self.lease, self._lead)

    async def _lead(self) -> None:
        # apscheduler (and the multiprocessing it pulls in) loads only in the process that leads
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        scheduler = AsyncIOScheduler()
        for job in self.jobs:
            scheduler.add_job(
                self._counted(job), "interval", seconds=job.every, id=job.name, name=job.name,
                max_instances=1, coalesce=True, next_run_time=utcnow(),
            )  # fmt: skip
        scheduler.start()
        self.leading.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.leading.clear()
            with contextlib.suppress(Exception):
                scheduler.shutdown(wait=False)

    def _counted(self, job: Job) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            try:
                await job.run()
            except Exception:
                log.exception("scheduled job %s failed; next run as planned", job.name)
            self.runs[job.name] += 1

        return run


async def billing_job(app: App) -> None:
    await app.billing.run_due_jobs()  # reminders and notices are queued in each change's transaction
    await app.billing.report_overage()


async def payment_inbox_job(app: App) -> None:
    """Apply Stars payments that were received but not applied by their own update (bot/middlewares/payments.py)."""
    applied = await app.billing.retry_inbox()
    if applied:
        log.info("payment inbox: %d received payment(s) applied on retry", applied)


async def recover_job(app: App) -> None:
    async with app.sessionmaker() as session:
        n = await SqlOutboxRepository(session).recover(utcnow() - STALE_CLAIM)
        await session.commit()
    if n:
        log.warning("outbox: %d message(s) in flight when their sender stopped: kept as unknown", n)


async def retention_job(app: App, clock: Clock = utcnow) -> dict[str, int]:
    now = clock()
    removed: dict[str, int] = {}
    async with app.sessionmaker() as session:
        removed["outbox"] = await SqlOutboxRepository(session).purge(now - KEEP_FINISHED)
        result = await session.execute(delete(UsageEventRow).where(UsageEventRow.at < now - KEEP_USAGE))
        removed["usage_events"] = int(result.rowcount or 0)
        result = await session.execute(delete(MeterReportRow).where(MeterReportRow.reported_at < now - KEEP_USAGE))
        removed["meter_reports"] = int(result.rowcount or 0)
        result = await session.execute(delete(ErrorEventRow).where(ErrorEventRow.at < now - KEEP_ERRORS))
        removed["error_events"] = int(result.rowcount or 0)
        result = await session.execute(
            delete(PaymentInboxRow).where(
                PaymentInboxRow.status == "done", PaymentInboxRow.done_at < now - KEEP_APPLIED_PAYMENTS
            )
        )
        removed["payment_inbox"] = int(result.rowcount or 0)
        cut = int((now - KEEP_VOTES).timestamp())  # votes are keyed by the bar's open time (epoch seconds)
        result = await session.execute(delete(AgentVoteRow).where(AgentVoteRow.time < cut))
        removed["agent_votes"] = int(result.rowcount or 0)
        await session.commit()
    if any(removed.values()):
        log.info("retention: removed %s", removed)
    return removed


def default_jobs(app: App) -> list[Job]:
    jobs = [
        Job("billing", 60.0, lambda: billing_job(app)),
        Job("payment-inbox", 30.0, lambda: payment_inbox_job(app)),
        Job("outbox-recover", 60.0, lambda: recover_job(app)),
        Job("retention", 3600.0, lambda: retention_job(app)),
        Job("reconcile", RECONCILE_EVERY, app.market.reconciler.run_once),
    ]
    analytics = getattr(app, "analytics", None)
    if analytics is not None and app.notifier is not None:
        digests = PerformanceDigests(app.sessionmaker, analytics, app.tiers, app.i18n, app.notifier)
        jobs.append(Job("performance-digests", DIGESTS_EVERY, digests.run))
    return jobs
