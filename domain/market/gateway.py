"""The trading gateway contract every MT5 backend implements.

Services depend on :class:`TradingGateway` (a Protocol) and on the plain
dataclasses of :mod:`domain.market.models`; they never see an MT5 object.
Backends: ``sim`` (:class:`domain.market.sim.SimGateway`), ``native``
(:class:`domain.market.native.NativeGateway`) and ``rpyc``
(:class:`domain.market.bridge.BridgeGateway`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable

from domain.market.models import (
    Account,
    Bar,
    Deal,
    OrderCheck,
    OrderResult,
    Position,
    Side,
    SymbolSpec,
    Tick,
    Timeframe,
)


class OrderAction(StrEnum):
    DEAL = "deal"  # open a position at market
    SLTP = "sltp"  # change SL/TP of an open position
    CLOSE = "close"  # close (part of) an open position at market


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A market trade request.

    ``price`` None means "at the current quote"; a given price is checked
    against the quote with ``deviation`` points of tolerance (else REQUOTE).
    ``position`` is the ticket to close or modify. ``client_id`` is the
    caller's idempotency key: the gateway does not de-duplicate, it only sends
    it as the MT5 comment when ``comment`` is empty, so a service can find the
    deal in the history after a timeout.
    """

    action: OrderAction
    symbol: str
    side: Side | None = None
    volume: float = 0.0
    price: float | None = None
    sl: float | None = None
    tp: float | None = None
    deviation: int = 20  # points
    magic: int = 0
    comment: str = ""
    position: int | None = None
    client_id: str | None = None

    @classmethod
    def market(
        cls,
        symbol: str,
        side: Side,
        volume: float,
        *,
        sl: float | None = None,
        tp: float | None = None,
        price: float | None = None,
        deviation: int = 20,
        magic: int = 0,
        comment: str = "",
        client_id: str | None = None,
    ) -> OrderRequest:
        return cls(OrderAction.DEAL, symbol, side, volume, price, sl, tp, deviation, magic, comment, None, client_id)

    @classmethod
    def close(
        cls,
        symbol: str,
        position: int,
        volume: float | None = None,
        *,
        deviation: int = 20,
        comment: str = "",
        client_id: str | None = None,
    ) -> OrderRequest:
        """Close ``volume`` lots of a position (None: all of it)."""
        return cls(
            OrderAction.CLOSE, symbol, None, volume or 0.0, None, None, None, deviation, 0, comment, position, client_id
        )

    @classmethod
    def modify(cls, symbol: str, position: int, *, sl: float | None = None, tp: float | None = None) -> OrderRequest:
        """Set SL/TP of a position; None removes the level."""
        return cls(OrderAction.SLTP, symbol, None, 0.0, None, sl, tp, 0, 0, "", position, None)

    @property
    def mt5_comment(self) -> str:
        """The comment sent to the terminal (MT5 keeps at most 31 characters)."""
        return (self.comment or self.client_id or "")[:31]


@runtime_checkable
class TradingGateway(Protocol):
    """One logged-in MT5 trade account, seen through plain dataclasses.

    Errors are :class:`domain.market.errors.GatewayError` subclasses; trade
    rejections are retcodes in the returned ``OrderResult``/``OrderCheck``.
    """

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def symbols(self) -> list[str]: ...

    async def symbol_spec(self, name: str) -> SymbolSpec: ...

    async def tick(self, symbol: str) -> Tick: ...

    async def bars(self, symbol: str, tf: Timeframe, count: int) -> list[Bar]:
        """The latest ``count`` bars, oldest first; the last one is still forming."""
        ...

    async def bars_range(self, symbol: str, tf: Timeframe, start: datetime, end: datetime) -> list[Bar]:
        """Bars opened within ``[start, end]`` (UTC), oldest first."""
        ...

    async def account(self) -> Account: ...

    async def positions(self, symbol: str | None = None) -> list[Position]: ...

    async def history_deals(self, start: datetime, end: datetime, symbol: str | None = None) -> list[Deal]: ...

    async def order_check(self, request: OrderRequest) -> OrderCheck: ...

    async def order_send(self, request: OrderRequest) -> OrderResult: ...

    async def ping(self) -> float:
        """Round-trip time to the terminal, in milliseconds."""
        ...
