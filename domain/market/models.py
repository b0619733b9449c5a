"""Market vocabulary shared by gateways, workers, agents and handlers.

Plain frozen dataclasses: gateways convert MetaTrader 5 structures into these,
so nothing above the gateway ever touches an MT5 object.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum


class Timeframe(StrEnum):
    M1 = "M1"
    M5 = "M5"
    M15 = "M15"
    H1 = "H1"
    H4 = "H4"
    D1 = "D1"

    @property
    def seconds(self) -> int:
        return _TF_SECONDS[self]


_TF_SECONDS = {
    Timeframe.M1: 60,
    Timeframe.M5: 300,
    Timeframe.M15: 900,
    Timeframe.H1: 3600,
    Timeframe.H4: 14400,
    Timeframe.D1: 86400,
}


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Retcode(IntEnum):
    """MT5 trade server return codes (the subset a retail terminal meets)."""

    REQUOTE = 10004
    REJECT = 10006
    CANCEL = 10007
    PLACED = 10008
    DONE = 10009
    DONE_PARTIAL = 10010
    ERROR = 10011
    TIMEOUT = 10012
    INVALID = 10013
    INVALID_VOLUME = 10014
    INVALID_PRICE = 10015
    INVALID_STOPS = 10016
    TRADE_DISABLED = 10017
    MARKET_CLOSED = 10018
    NO_MONEY = 10019
    PRICE_CHANGED = 10020
    PRICE_OFF = 10021
    INVALID_EXPIRATION = 10022
    ORDER_CHANGED = 10023
    TOO_MANY_REQUESTS = 10024
    NO_CHANGES = 10025
    LOCKED = 10028
    FROZEN = 10029
    INVALID_FILL = 10030
    CONNECTION = 10031
    ONLY_REAL = 10032
    LIMIT_ORDERS = 10033
    LIMIT_VOLUME = 10034
    POSITION_CLOSED = 10036
    CLOSE_ORDER_EXIST = 10039
    LIMIT_POSITIONS = 10040


@dataclass(frozen=True, slots=True)
class Tick:
    symbol: str
    time_msc: int  # epoch milliseconds, UTC
    bid: float
    ask: float
    volume: float = 0.0


@dataclass(frozen=True, slots=True)
class Bar:
    time: int  # bar open, epoch seconds, UTC
    open: float
    high: float
    low: float
    close: float
    tick_volume: float = 0.0
    spread: int = 0  # points


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    name: str
    description: str
    category: str  # fx, metal, index, crypto
    digits: int
    point: float
    contract_size: float
    volume_min: float
    volume_max: float
    volume_step: float
    stops_level: int  # points
    currency_base: str
    currency_profit: str
    currency_margin: str
    margin_rate: float  # margin per lot = contract_size * price * margin_rate (before leverage)


@dataclass(frozen=True, slots=True)
class Account:
    login: int
    server: str
    currency: str
    leverage: int
    balance: float
    equity: float
    margin: float
    margin_free: float
    margin_level: float | None  # percent; None when no margin is used
    is_demo: bool


@dataclass(frozen=True, slots=True)
class Position:
    ticket: int
    symbol: str
    side: Side
    volume: float
    price_open: float
    price_current: float
    sl: float | None
    tp: float | None
    profit: float
    time: int  # epoch seconds
    magic: int = 0
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Deal:
    ticket: int
    order: int
    position_id: int
    symbol: str
    side: Side
    entry: str  # "in" | "out"
    volume: float
    price: float
    profit: float
    commission: float
    swap: float
    time: int  # epoch seconds
    comment: str = ""
    magic: int = 0  # the expert id of the request that made the deal (orders carry theirs: reconciliation)


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """Result of a pre-trade check (MT5 ``order_check``)."""

    retcode: Retcode | int
    margin: float
    margin_free: float
    equity: float
    comment: str = ""


@dataclass(frozen=True, slots=True)
class OrderResult:
    retcode: Retcode | int
    order: int
    deal: int
    volume: float
    price: float
    comment: str = ""

    @property
    def ok(self) -> bool:
        return self.retcode in (Retcode.DONE, Retcode.DONE_PARTIAL, Retcode.PLACED)
