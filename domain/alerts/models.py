"""Price alert vocabulary: rules a user sets and the events they fire.

Rules are evaluated on the bid, like MT5 charts and ``domain.market.bars``.

Semantics (the index in ``domain.alerts.index`` implements exactly these):

* ``ABOVE`` fires on a tick whose bid is ``>= threshold``; ``BELOW`` on a bid
  ``<= threshold``. They are level conditions: a rule added while the
  condition already holds fires on the next tick, and a repeating rule fires
  again after its cooldown for as long as the condition holds.
* ``CROSS`` fires once per crossing of ``threshold``. The price is on the
  upper side when ``bid >= threshold`` and on the lower side otherwise; a
  crossing is a change of side. The starting side is taken from the price
  the rule was created at (or the price it last fired at), so a crossing that
  happens before the rule reaches the evaluator still fires. Crossings during
  a cooldown or a pause are not reported; on re-arm the side is taken afresh
  from the last price.
* ``PCT_MOVE`` fires when the bid has moved by at least ``pct`` percent within
  the last ``window_s`` seconds: up when ``bid >= min * (1 + pct / 100)``,
  else down when ``bid <= max * (1 - pct / 100)``, with min/max over the
  window's ticks (those at or after ``now - window``). Like ``ABOVE`` it is a
  level condition: a repeating rule fires again after its cooldown while the
  move still holds, as MetaTrader's own alerts repeat after their timeout.
* A one-shot rule finishes when it fires; a repeating one re-arms
  ``cooldown_s`` seconds after it fired, on the first tick at or after that
  time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from domain.errors import InvalidInput


class AlertKind(StrEnum):
    ABOVE = "above"
    BELOW = "below"
    CROSS = "cross"
    PCT_MOVE = "pct_move"


class AlertStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    TRIGGERED = "triggered"  # a one-shot rule that fired; never evaluated again


class Direction(StrEnum):
    UP = "up"
    DOWN = "down"


class InvalidAlertRule(InvalidInput):
    """An alert rule with missing or out-of-range parameters; params: field."""

    code = "ALR-INVALID"


@dataclass(frozen=True, slots=True)
class AlertRule:
    id: int
    user_id: int
    symbol: str
    kind: AlertKind
    threshold: float = 0.0  # price level: ABOVE, BELOW, CROSS
    pct: float = 0.0  # PCT_MOVE: percent, 1.5 means 1.5 %
    window_s: int = 0  # PCT_MOVE: window length in seconds
    repeat: bool = False
    cooldown_s: int = 0  # repeating rules: seconds between two fires
    status: AlertStatus = AlertStatus.ACTIVE
    created_price: float | None = None  # bid when the rule was created (CROSS side)
    created_msc: int = 0
    last_triggered_msc: int | None = None
    last_price: float | None = None  # bid at the last fire

    def __post_init__(self) -> None:
        if not self.symbol:
            raise InvalidAlertRule("symbol is empty", field="symbol")
        if self.kind is AlertKind.PCT_MOVE:
            if not (math.isfinite(self.pct) and self.pct > 0):
                raise InvalidAlertRule("pct must be > 0", field="pct")
            if self.window_s <= 0:
                raise InvalidAlertRule("window_s must be > 0", field="window_s")
        else:
            if not (math.isfinite(self.threshold) and self.threshold > 0):
                raise InvalidAlertRule("threshold must be > 0", field="threshold")
            if self.kind is AlertKind.CROSS and self.created_price is None:
                raise InvalidAlertRule("a cross rule needs created_price", field="created_price")
        if self.cooldown_s < 0:
            raise InvalidAlertRule("cooldown_s must be >= 0", field="cooldown_s")

    @property
    def reference_price(self) -> float | None:
        """The last price this rule knows of: where it last fired, else where it was created."""
        return self.last_price if self.last_triggered_msc is not None else self.created_price


class AlertFired(NamedTuple):
    """One firing: ``rule`` as registered (its ``last_*`` fields predate this firing).

    A named tuple, not a frozen dataclass: it is built on the tick path and a
    tuple is three times cheaper to make.
    """

    rule: AlertRule
    price: float
    time_msc: int
    direction: Direction

    @property
    def final(self) -> bool:
        """True when the rule is finished (one-shot) and must be deactivated."""
        return not self.rule.repeat
