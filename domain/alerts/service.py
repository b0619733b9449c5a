"""The alert evaluator: an ``AlertIndex`` fed by the tick bus, persisted through a repository.

The per-tick path is the index alone (``AlertEvaluator.on_tick`` and its
batch form ``on_ticks`` are the index's own methods, registered on the bus); fired events go to an
in-memory FIFO that the market feed settles (``settle``: persists each one,
then notifies) before it polls again, so a firing is committed in the poll
that detected it rather than waiting in memory for another task (a crash
there lost it: cross and percent-move alerts need the moment they detected).
An async consumer (``run``) retries what could not be persisted. Because a firing updates the in-memory rule at once (a one-shot
rule leaves the index, a repeating one starts its cooldown), one process fires
a rule once per crossing; because the state is persisted before the user is
told, and ``load`` skips finished rules and restarts cooldowns and cross sides
from the persisted trigger, a restart does not fire it again.

The window between persisting and notifying is the repository's to close:
``mark_triggered`` may write the notification to an outbox in the same
transaction and the notifier may then be omitted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import Protocol

from domain.alerts.index import AlertIndex
from domain.alerts.models import AlertFired, AlertRule, AlertStatus
from domain.market.models import Tick

__all__ = ["AlertEvaluator", "AlertRepository", "Notifier"]

log = logging.getLogger(__name__)

Notifier = Callable[[AlertFired], Awaitable[object]]


class AlertRepository(Protocol):
    """Storage of alert rules (the SQLAlchemy implementation lives with the other repositories)."""

    async def list_active(self, symbols: Collection[str] | None = None) -> Sequence[AlertRule]:
        """Every rule not finished, ACTIVE or PAUSED (paused rules are held so resume needs no I/O),
        with ``last_triggered_msc`` and ``last_price`` as persisted; only ``symbols`` when given."""
        ...

    async def mark_triggered(self, alert_id: int, time_msc: int, price: float, deactivate: bool) -> bool:
        """Record a firing atomically; with ``deactivate`` the rule becomes TRIGGERED.

        Returns False, changing nothing, when the rule is gone, already
        TRIGGERED, or already records a trigger at or after ``time_msc``; the
        caller then does not notify. Commits its own unit of work.
        """
        ...


class AlertEvaluator:
    """Owns the process's ``AlertIndex``; register ``on_tick`` on the tick bus."""

    def __init__(self, repository: AlertRepository, *, symbols: Collection[str] | None = None,
                 retry_delay: float = 1.0, max_retry_delay: float = 30.0) -> None:
        self._repo = repository
        self._symbols = frozenset(symbols) if symbols is not None else None
        self._fired: deque[AlertFired] = deque()
        self._wake = asyncio.Event()
        self._index = AlertIndex(on_fire=self._enqueue)
        self._retry_delay = retry_delay
        self._max_retry_delay = max_retry_delay
        self._stopping = False
        self._flushing = asyncio.Lock()  # the feed's settle and the run loop never persist one event twice
        self.notify: Notifier | None = None  # told after each persisted firing (None: the outbox path)
        self.persisted = 0
        self.skipped = 0  # fired events the repository refused (already recorded)
        self.notify_errors = 0
        self.on_tick: Callable[[Tick], Sequence[AlertFired]] = self._index.on_tick
        self.on_ticks: Callable[[Iterable[Tick]], Sequence[AlertFired]] = self._index.on_ticks  # the bus's batch form
        # How a firing is recorded; the runtime may swap in one that also queues the notification
        # in the same transaction (workers/alert_delivery.py AlertDelivery.persist).
        self.persist: Callable[[AlertFired], Awaitable[bool]] = self._mark_triggered

    async def _mark_triggered(self, event: AlertFired) -> bool:
        return await self._repo.mark_triggered(event.rule.id, event.time_msc, event.price, event.final)

    @property
    def index(self) -> AlertIndex:
        return self._index

    @property
    def pending(self) -> int:
        """Fired events not yet persisted."""
        return len(self._fired)

    async def load(self) -> int:
        """Replace the index with the repository's live rules; returns how many were loaded."""
        rules = await self._repo.list_active(self._symbols)
        self._index.clear()
        n = 0
        for rule in rules:
            if rule.status is AlertStatus.TRIGGERED:
                continue
            if self._symbols is not None and rule.symbol not in self._symbols:
                continue
            self._index.add(rule)
            n += 1
        log.info("alert evaluator loaded %d rules", n)
        return n

    # ---- changes from the service layer (after its transaction committed) ----

    def add(self, rule: AlertRule) -> None:
        if self._symbols is None or rule.symbol in self._symbols:
            self._index.add(rule)

    def remove(self, alert_id: int) -> AlertRule | None:
        return self._index.remove(alert_id)

    def pause(self, alert_id: int) -> bool:
        return self._index.pause(alert_id)

    def resume(self, alert_id: int) -> bool:
        return self._index.resume(alert_id)

    def count_for_user(self, user_id: int) -> int:
        return self._index.count_for_user(user_id)

    # ---- the async side ----------------------------------------------------

    def _enqueue(self, events: list[AlertFired]) -> None:
        self._fired.extend(events)
        if not self._wake.is_set():
            self._wake.set()

    async def flush(self, notify: Notifier | None = None) -> int:
        """Persist (then notify) every queued event; returns how many were notified.

        A repository failure leaves the failed event at the head of the queue
        and propagates.
        """
        notify = notify if notify is not None else self.notify
        async with self._flushing:
            return await self._flush(notify)

    async def settle(self) -> int:
        """Persist what the last ticks fired, now (the market feed calls it after each poll).

        A repository failure is logged and left to ``run``'s retries; the events stay queued."""
        if not self._fired:
            return 0
        try:
            return await self.flush()
        except Exception:
            log.exception("alert persistence failed; %d events pending, retried in the background", len(self._fired))
            self._wake.set()
            return 0

    async def _flush(self, notify: Notifier | None) -> int:
        done = 0
        fired = self._fired
        while fired:
            event = fired[0]
            ok = await self.persist(event)
            fired.popleft()
            if not ok:
                self.skipped += 1
                continue
            self.persisted += 1
            if notify is not None:
                try:
                    await notify(event)
                except Exception:
                    self.notify_errors += 1
                    log.exception("alert %s: notification failed", event.rule.id)
            done += 1
        return done

    async def run(self, notify: Notifier | None = None) -> None:
        """Persist and notify fired events until ``stop``; repository errors are retried with backoff."""
        if notify is not None:
            self.notify = notify
        self._stopping = False
        delay = self._retry_delay
        while not self._stopping:
            if not self._fired:
                self._wake.clear()
                await self._wake.wait()
                continue
            try:
                await self.flush(notify)
                delay = self._retry_delay
            except Exception:
                log.exception("alert persistence failed; %d events pending, retry in %.1fs", len(self._fired), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_retry_delay)
        await self.flush(notify)

    def stop(self) -> None:
        """Make ``run`` flush what is queued and return."""
        self._stopping = True
        self._wake.set()
