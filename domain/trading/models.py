"""Trading vocabulary: accounts, the per-user trading profile, orders and their previews."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from domain.errors import DomainError, InvalidInput
from domain.market.models import Retcode, Side
from domain.parsing import parse_decimal


class AccountKind(StrEnum):
    DEMO = "demo"
    LIVE = "live"


class OrderKind(StrEnum):
    OPEN = "open"
    CLOSE = "close"
    MODIFY = "modify"


class OrderStatus(StrEnum):
    PENDING = "pending"  # previewed, waiting for Confirm
    SENDING = "sending"  # claimed by one Confirm; being sent
    DONE = "done"  # the broker accepted it
    REJECTED = "rejected"  # the broker answered with an error retcode
    BLOCKED = "blocked"  # refused by our risk limits or the kill switch
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"  # the gateway failed; outcome unknown or not sent


FINAL = frozenset(OrderStatus) - {OrderStatus.PENDING}


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_volume: float = 10.0  # lots per order
    max_positions: int = 20
    max_daily_loss_pct: float = 5.0  # of equity at the start of the day
    risk_per_trade_pct: float = 2.0  # of equity, between entry and stop loss

    FIELDS = ("max_volume", "max_positions", "max_daily_loss_pct", "risk_per_trade_pct")
    BOUNDS = {
        "max_volume": (0.01, 1000.0),
        "max_positions": (1, 500),
        "max_daily_loss_pct": (0.1, 100.0),
        "risk_per_trade_pct": (0.1, 100.0),
    }

    def with_value(self, name: str, raw: str) -> RiskLimits:
        if name not in self.FIELDS:
            raise InvalidInput("unknown limit", field=name)
        lo, hi = self.BOUNDS[name]
        value = parse_number(raw, name)
        if not lo <= value <= hi:
            raise LimitOutOfRange("limit out of range", field=name, low=lo, high=hi)
        values = {f: getattr(self, f) for f in self.FIELDS}
        values[name] = int(value) if name == "max_positions" else value
        return RiskLimits(**values)


@dataclass(frozen=True, slots=True)
class TradingProfile:
    user_id: int
    active: AccountKind = AccountKind.DEMO
    auto_trading: bool = False
    kill_switch: bool = False
    limits: RiskLimits = field(default_factory=RiskLimits)


@dataclass(frozen=True, slots=True)
class LinkedAccount:
    user_id: int
    kind: AccountKind
    login: int
    server: str


@dataclass(frozen=True, slots=True)
class Order:
    id: str
    user_id: int
    account_kind: AccountKind
    login: int
    kind: OrderKind
    symbol: str | None
    params: dict[str, Any]
    status: OrderStatus
    retcode: int | None
    result: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Preview:
    """What the user confirms: the normalized order with its margin and risk."""

    order: Order
    side: Side
    symbol: str
    volume: float
    requested_volume: float
    price: float
    sl: float | None
    tp: float | None
    digits: int
    margin: float
    margin_free: float
    equity: float
    currency: str
    risk_money: float | None  # loss at the stop loss, in account currency; None without SL
    risk_pct: float | None
    check_retcode: int
    check_ok: bool


@dataclass(frozen=True, slots=True)
class ClosePreview:
    order: Order
    positions: tuple[tuple[int, str, str, float, float, float], ...]  # ticket, symbol, side, volume, close volume, P/L
    currency: str


@dataclass(frozen=True, slots=True)
class Execution:
    """A confirmed order's outcome (also for a repeated Confirm: ``repeated``)."""

    order: Order
    retcodes: tuple[int, ...]
    ok: bool
    price: float | None
    volume: float | None
    repeated: bool = False
    breach: RiskBreachInfo | None = None


@dataclass(frozen=True, slots=True)
class RiskBreachInfo:
    rule: str  # max_volume, max_positions, daily_loss, risk_per_trade, kill_switch
    limit: float
    value: float


@dataclass(frozen=True, slots=True)
class DayPnl:
    realized: float
    floating: float
    start_equity: float

    @property
    def total(self) -> float:
        return self.realized + self.floating

    @property
    def loss_pct(self) -> float:
        if self.total >= 0 or self.start_equity <= 0:
            return 0.0
        return -self.total / self.start_equity * 100


RETCODE_OK = frozenset({int(Retcode.DONE), int(Retcode.DONE_PARTIAL), int(Retcode.PLACED)})


# ---- errors -------------------------------------------------------------------


class LimitOutOfRange(InvalidInput):
    code = "TRD-LIMIT-RANGE"


class InvalidOrder(InvalidInput):
    """params: field (volume, sl, tp, side, symbol, ticket)"""

    code = "TRD-INVALID"


class StopsWrongSide(InvalidInput):
    """params: field (sl|tp), side"""

    code = "TRD-STOPS-SIDE"


class VolumeOutOfRange(InvalidInput):
    """params: low, high"""

    code = "TRD-VOLUME-RANGE"


class OrderRefused(DomainError):
    """A confirmation that is not this user's, or not a pending order at all (audited)."""

    code = "TRD-REFUSED"


class OrderExpired(DomainError):
    code = "TRD-EXPIRED"


class PositionNotFound(DomainError):
    """params: ticket"""

    code = "TRD-NO-POSITION"


class OutcomeUnknown(DomainError):
    """The gateway timed out while an order was being sent: it may or may not be placed."""

    code = "TRD-UNKNOWN"


class NoPositions(DomainError):
    code = "TRD-NO-POSITIONS"


class NoLiveAccount(DomainError):
    code = "TRD-NO-LIVE"


class LinkFailed(DomainError):
    code = "TRD-LINK-FAILED"


class MarketUnavailable(DomainError):
    """The trading gateway cannot be reached; nothing was sent."""

    code = "MKT-UNAVAILABLE"


class SymbolNotFound(InvalidInput):
    """params: symbol, suggestions (comma-separated, may be empty)"""

    code = "MKT-UNKNOWN-SYMBOL"


class NoQuote(DomainError):
    """params: symbol"""

    code = "MKT-NO-QUOTES"


def parse_number(raw: str, name: str) -> float:
    """A finite decimal typed for ``name`` (volume, sl, tp, a limit); InvalidOrder naming the field otherwise."""
    value = parse_decimal(raw)
    if value is None:
        raise InvalidOrder("not a number", field=name)
    return value
