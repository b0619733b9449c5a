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
    SENDING = "sending"  # claimed by one Confirm; being sent, or its outcome unknown until reconciled
    DONE = "done"  # the broker accepted it
    REJECTED = "rejected"  # the broker answered with an error retcode
    BLOCKED = "blocked"  # refused by our risk limits or the kill switch
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    FAILED = "failed"  # the gateway failed before the request left: not sent


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
    # Trades simulated prices: a demo account (always on the simulated terminal), or a live login while
    # MT5_BACKEND=sim. Set by TradingService; not part of the account's identity.
    simulated: bool = field(default=False, compare=False)


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
    updated_at: datetime | None = None  # for a SENDING order: when it was claimed


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
    simulated: bool = False  # on an account that trades simulated prices (LinkedAccount.simulated)


@dataclass(frozen=True, slots=True)
class ClosePreview:
    order: Order
    positions: tuple[tuple[int, str, str, float, float, float], ...]  # ticket, symbol, side, volume, close volume, P/L
    currency: str
    simulated: bool = False  # on an account that trades simulated prices (LinkedAccount.simulated)


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
    simulated: bool = False  # filled at simulated prices (an account whose LinkedAccount.simulated holds)


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


def order_magic(order_id: str) -> int:
    """The MT5 ``magic`` an order carries to the terminal: 31 bits of its id (its comment carries the id itself,
    which a broker may rewrite; the magic it never touches). Positive and below 2**31 for any MT5 build."""
    return int(order_id[:8], 16) & 0x7FFFFFFF or 1


@dataclass(frozen=True, slots=True)
class Settlement:
    """How reconciliation settled an order whose outcome was unknown (DONE with the real fill, or REJECTED)."""

    order: Order
    price: float | None = None
    volume: float | None = None
    ticket: int | None = None  # the position it opened, closed or modified
    reason: str = ""  # REJECTED: "no_trace"


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
    """The order reached the gateway but no answer came back (timeout, connection lost): it may or may not be
    placed. It stays SENDING until reconciliation finds it in the terminal (domain/trading/reconcile.py)."""

    code = "TRD-UNKNOWN"


class AccountBusy(DomainError):
    """Another order on this account held its lock longer than ``locks.WAIT``; nothing was sent."""

    code = "TRD-BUSY"


class OrderUnsettled(DomainError):
    """Another order on this account has no known outcome yet (it is being checked with the broker);
    nothing new is sent on the account until it is settled. params: order (its short id)"""

    code = "TRD-UNSETTLED"


class NoPositions(DomainError):
    code = "TRD-NO-POSITIONS"


class NoLiveAccount(DomainError):
    code = "TRD-NO-LIVE"


class LinkFailed(DomainError):
    code = "TRD-LINK-FAILED"


class NoFreeTerminal(DomainError):
    """Every terminal of the pool serves another live account: nothing was linked."""

    code = "TRD-NO-TERMINAL"


class AccountTaken(DomainError):
    """This (login, server) is linked by another user (audited)."""

    code = "TRD-ACCOUNT-TAKEN"


class DemoLoginRefused(DomainError):
    """A platform demo login, or an account the terminal reports as demo, offered as a live account."""

    code = "TRD-DEMO-LOGIN"


class TerminalMismatch(DomainError):
    """The account's terminal was on another account: nothing was sent (audited)."""

    code = "TRD-TERMINAL-MISMATCH"


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
