"""Reconciliation: orders whose outcome is unknown are looked up in the terminal and settled once.

An order is unsettled while it is SENDING: claimed, maybe sent, no answer
recorded. That is normal for the second a send takes; it lasts when the
gateway timed out or lost its connection mid-call, or when the process died
between the claim and the answer. Every order carries its id to the terminal
(the MT5 comment, at most 31 characters: the 16-character id fits) and its
magic (:func:`~domain.trading.models.order_magic`, which brokers never
rewrite), so it can be found again in open positions and deal history.

:class:`Reconciler` runs at start-up and periodically (workers/scheduler.py,
the ``reconcile`` job, one process at a time) over every SENDING order:

1. it takes the account's lock (domain/trading/locks.py): the order's sender,
   if alive, holds it from the claim to the answer, so an order seen SENDING
   under the lock is not being sent right now;
2. it looks for the order's deals and positions in the terminal;
3. found: the order is settled DONE with the real fill (price, volume, ticket);
4. not found: on a demo account that is final (each terminal call there is a
   database transaction: the fill is stored or never happened), so REJECTED
   at once. On a live terminal history can lag behind a reconnect, so the
   order is settled REJECTED only once it has been unknown for longer than
   :data:`UNKNOWN_AFTER` with no trace: a market order is filled or refused
   within the gateway's timeout (seconds) and never executed minutes later,
   and ten minutes is ample for a terminal to reconnect and sync its history;
5. the settlement is one committed transition SENDING -> DONE/REJECTED, with
   its audit entry and the user's notice (in their language, through the
   outbox) in the same transaction: two reconcilers racing settle it once.

While an order is unsettled, new orders on its account are refused
(TradingService._refuse_unsettled): a retry could double a real position.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING

from domain.audit import Surface
from domain.clock import Clock, utcnow
from domain.market.errors import GatewayError
from domain.market.models import Deal, Position
from domain.trading.models import (
    AccountBusy,
    AccountKind,
    LinkFailed,
    MarketUnavailable,
    Order,
    OrderKind,
    OrderStatus,
    Settlement,
    order_magic,
)

if TYPE_CHECKING:
    from domain.db.uow import UnitOfWork
    from domain.trading.service import TradingService

log = logging.getLogger(__name__)

UNKNOWN_AFTER = timedelta(minutes=10)
EVERY = 30.0  # seconds between passes (the scheduler's job)
BATCH = 200
LOCK_WAIT = 5.0  # an account busy sending is looked at on the next pass, not waited for

# Render and queue the user's notice inside the settling unit of work (bot/views/trading.py SettlementNotice).
Announce = Callable[["UnitOfWork", Settlement], Awaitable[object]]


def carries(order: Order, comment: str, magic: int) -> bool:
    """Whether a deal or position with this comment and magic was made by ``order``."""
    return comment == order.id[:31] or magic == order_magic(order.id)


def find_fill(order: Order, positions: Sequence[Position], deals: Sequence[Deal]) -> Settlement | None:
    """The order's effect among the account's positions and deals; None when there is no trace of it."""
    if order.kind is OrderKind.MODIFY:
        ticket = int(order.params.get("ticket") or 0)
        pos = next((p for p in positions if p.ticket == ticket), None)
        want = (order.params.get("sl"), order.params.get("tp"))
        if pos is not None and _same(pos.sl, want[0]) and _same(pos.tp, want[1]):
            return Settlement(order, ticket=ticket)
        return None
    entry = "in" if order.kind is OrderKind.OPEN else "out"
    mine = [d for d in deals if d.entry == entry and carries(order, d.comment, d.magic)]
    if mine:
        volume = sum(d.volume for d in mine)
        price = sum(d.price * d.volume for d in mine) / volume if volume > 0 else mine[-1].price
        return Settlement(order, price=round(price, 8), volume=round(volume, 8), ticket=mine[0].position_id)
    if order.kind is OrderKind.OPEN:  # history may lag behind the positions on a real terminal
        for p in positions:
            if carries(order, p.comment, p.magic) and (order.symbol is None or p.symbol == order.symbol):
                return Settlement(order, price=p.price_open, volume=p.volume, ticket=p.ticket)
    return None


def _same(level: float | None, wanted: float | None) -> bool:
    return abs((level or 0.0) - float(wanted or 0.0)) < 1e-9


class Reconciler:
    def __init__(
        self, unit: Callable[[], UnitOfWork], trading: TradingService, *, announce: Announce | None = None,
        clock: Clock = utcnow, unknown_after: timedelta = UNKNOWN_AFTER,
    ) -> None:  # fmt: skip
        self._unit = unit
        self.trading = trading
        self.announce = announce
        self._clock = clock
        self.unknown_after = unknown_after

    async def run_once(self) -> list[Settlement]:
        """One pass over the unsettled orders; returns what this pass settled."""
        async with self._unit() as uow:
            orders = await uow.trading.sending(BATCH)
        settled: list[Settlement] = []
        for order in orders:
            try:
                s = await self.reconcile(order.id, order.account_kind, order.login)
            except AccountBusy:
                log.info("order %s: its account is busy sending; next pass", order.id)
                continue
            except Exception:  # one account's trouble never stops the others
                log.exception("reconciling order %s failed; retried on the next pass", order.id)
                continue
            if s is not None:
                settled.append(s)
        if settled:
            log.info("reconciliation settled %d order(s)", len(settled))
        return settled

    async def reconcile(self, order_id: str, kind: AccountKind, login: int) -> Settlement | None:
        async with self.trading.locks.hold(kind.value, login, wait=LOCK_WAIT), self._unit() as uow:
            order = await uow.trading.order(order_id)
            if order is None or order.status is not OrderStatus.SENDING:
                return None  # settled meanwhile (by its sender or another reconciler)
            claimed = order.updated_at or order.created_at
            conclusive = kind is AccountKind.DEMO or self._clock() - claimed > self.unknown_after
            try:
                gw = await self.trading.order_gateway(uow, order)
                if gw is None:
                    log.warning("order %s: its %s account %s is not linked; it waits", order.id, kind.value, login)
                    return None
                return await self.trading.reconcile_with(
                    uow, gw, order, Surface.SYSTEM, conclusive=conclusive, announce=self.announce
                )
            except (GatewayError, MarketUnavailable, LinkFailed) as exc:  # the terminal is out of reach: next pass
                log.warning("order %s: terminal unreachable (%s); retried on the next pass", order.id, exc.code)
                return None
