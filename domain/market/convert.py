"""MetaTrader5 module results → our dataclasses, and requests → MT5 dicts.

Shared by every backend that speaks the module surface (native, bridge and
the simulated module), so there is exactly one mapping of MT5 shapes.
Inputs are anything with the real attribute names (namedtuples, records).
"""

from __future__ import annotations

from datetime import datetime, UTC
from typing import Any

import numpy as np

from domain.market import mt5api
from domain.market.errors import (
    AutoTradingDisabled,
    GatewayAuthError,
    GatewayError,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidRequest,
)
from domain.market.gateway import OrderAction, OrderRequest
from domain.market.models import (
    Account,
    Bar,
    Deal,
    OrderCheck,
    OrderResult,
    Position,
    Retcode,
    Side,
    SymbolSpec,
    Tick,
    Timeframe,
)

TIMEFRAMES: dict[Timeframe, int] = {
    Timeframe.M1: mt5api.TIMEFRAME_M1,
    Timeframe.M5: mt5api.TIMEFRAME_M5,
    Timeframe.M15: mt5api.TIMEFRAME_M15,
    Timeframe.H1: mt5api.TIMEFRAME_H1,
    Timeframe.H4: mt5api.TIMEFRAME_H4,
    Timeframe.D1: mt5api.TIMEFRAME_D1,
}

_ENTRIES = {
    mt5api.DEAL_ENTRY_IN: "in",
    mt5api.DEAL_ENTRY_OUT: "out",
    mt5api.DEAL_ENTRY_INOUT: "inout",
    mt5api.DEAL_ENTRY_OUT_BY: "out_by",
}

_UNAVAILABLE = {
    mt5api.RES_E_INTERNAL_FAIL,
    mt5api.RES_E_INTERNAL_FAIL_SEND,
    mt5api.RES_E_INTERNAL_FAIL_RECEIVE,
    mt5api.RES_E_INTERNAL_FAIL_INIT,
    mt5api.RES_E_INTERNAL_FAIL_CONNECT,
}


def error_from_last_error(code: int, message: str, context: str = "") -> GatewayError:
    """Map ``MetaTrader5.last_error()`` to a typed gateway error."""
    text = f"{context}: {message} ({code})" if context else f"{message} ({code})"
    if code == mt5api.RES_E_INTERNAL_FAIL_TIMEOUT:
        return GatewayTimeout(text, mt5_code=code)
    if code in _UNAVAILABLE:
        return GatewayUnavailable(text, mt5_code=code)
    if code == mt5api.RES_E_AUTH_FAILED:
        return GatewayAuthError(text, mt5_code=code)
    if code == mt5api.RES_E_AUTO_TRADING_DISABLED:
        return AutoTradingDisabled(text, mt5_code=code)
    if code == mt5api.RES_E_INVALID_PARAMS:
        return InvalidRequest(text, mt5_code=code)
    return GatewayError(text, mt5_code=code)


def epoch_seconds(when: datetime | int | float) -> int:
    """UTC epoch seconds; naive datetimes are taken as UTC (as MT5 does)."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return int(when.timestamp())
    return int(when)


def retcode(value: int) -> Retcode | int:
    try:
        return Retcode(int(value))
    except ValueError:
        return int(value)


def _opt(price: float) -> float | None:
    return float(price) if price else None


def symbol_spec(info: Any, category: str, margin_rate: float) -> SymbolSpec:
    return SymbolSpec(
        name=info.name,
        description=info.description,
        category=category,
        digits=int(info.digits),
        point=float(info.point),
        contract_size=float(info.trade_contract_size),
        volume_min=float(info.volume_min),
        volume_max=float(info.volume_max),
        volume_step=float(info.volume_step),
        stops_level=int(info.trade_stops_level),
        currency_base=info.currency_base,
        currency_profit=info.currency_profit,
        currency_margin=info.currency_margin,
        margin_rate=margin_rate,
    )


_FIAT = {"USD", "EUR", "GBP", "JPY", "CHF", "AUD", "CAD", "NZD", "SEK", "NOK", "DKK", "SGD", "HKD", "ZAR", "MXN"}


def category_of(info: Any) -> str:
    """fx, metal, index, crypto or other, from the symbol's tree path and currencies."""
    path = str(getattr(info, "path", "")).lower()
    for needle, cat in (
        ("forex", "fx"),
        ("metal", "metal"),
        ("indic", "index"),
        ("index", "index"),
        ("crypto", "crypto"),
    ):
        if needle in path:
            return cat
    base, profit = info.currency_base, info.currency_profit
    if base in ("XAU", "XAG", "XPT", "XPD"):
        return "metal"
    if base in _FIAT and profit in _FIAT and base != profit:
        return "fx"
    if base in ("BTC", "ETH", "LTC", "XRP", "SOL"):
        return "crypto"
    return "other"


def tick(symbol: str, t: Any) -> Tick:
    return Tick(symbol=symbol, time_msc=int(t.time_msc), bid=float(t.bid), ask=float(t.ask), volume=float(t.volume))


def bars(rates: Any) -> list[Bar]:
    arr = np.asarray(rates)
    if arr.size == 0:
        return []
    return [
        Bar(
            time=int(r["time"]),
            open=float(r["open"]),
            high=float(r["high"]),
            low=float(r["low"]),
            close=float(r["close"]),
            tick_volume=float(r["tick_volume"]),
            spread=int(r["spread"]),
        )
        for r in arr
    ]


def account(info: Any) -> Account:
    margin = float(info.margin)
    return Account(
        login=int(info.login),
        server=info.server,
        currency=info.currency,
        leverage=int(info.leverage),
        balance=float(info.balance),
        equity=float(info.equity),
        margin=margin,
        margin_free=float(info.margin_free),
        margin_level=float(info.margin_level) if margin > 0 else None,
        is_demo=int(info.trade_mode) != mt5api.ACCOUNT_TRADE_MODE_REAL,  # demo or contest
    )


def position(p: Any) -> Position:
    return Position(
        ticket=int(p.ticket),
        symbol=p.symbol,
        side=Side.BUY if int(p.type) == mt5api.POSITION_TYPE_BUY else Side.SELL,
        volume=float(p.volume),
        price_open=float(p.price_open),
        price_current=float(p.price_current),
        sl=_opt(p.sl),
        tp=_opt(p.tp),
        profit=float(p.profit),
        time=int(p.time),
        magic=int(p.magic),
        comment=p.comment,
    )


def deal(d: Any) -> Deal | None:
    """A trade deal; None for balance, credit and other non-trade deals."""
    if int(d.type) not in (mt5api.DEAL_TYPE_BUY, mt5api.DEAL_TYPE_SELL):
        return None
    return Deal(
        ticket=int(d.ticket),
        order=int(d.order),
        position_id=int(d.position_id),
        symbol=d.symbol,
        side=Side.BUY if int(d.type) == mt5api.DEAL_TYPE_BUY else Side.SELL,
        entry=_ENTRIES.get(int(d.entry), str(d.entry)),
        volume=float(d.volume),
        price=float(d.price),
        profit=float(d.profit),
        commission=float(d.commission),
        swap=float(d.swap),
        time=int(d.time),
        comment=d.comment,
        magic=int(d.magic),
    )


def order_result(r: Any) -> OrderResult:
    return OrderResult(
        retcode=retcode(r.retcode),
        order=int(r.order),
        deal=int(r.deal),
        volume=float(r.volume),
        price=float(r.price),
        comment=r.comment,
    )


def order_check(r: Any) -> OrderCheck:
    # order_check answers 0 ("Done") when the request would pass
    code = int(r.retcode)
    return OrderCheck(
        retcode=Retcode.DONE if code == 0 else retcode(code),
        margin=float(r.margin),
        margin_free=float(r.margin_free),
        equity=float(r.equity),
        comment=r.comment,
    )


def filling_type(filling_mode: int) -> int:
    """The order filling a symbol accepts (FOK, else IOC, else RETURN)."""
    if filling_mode & mt5api.SYMBOL_FILLING_FOK:
        return mt5api.ORDER_FILLING_FOK
    if filling_mode & mt5api.SYMBOL_FILLING_IOC:
        return mt5api.ORDER_FILLING_IOC
    return mt5api.ORDER_FILLING_RETURN


def order_type(side: Side) -> int:
    return mt5api.ORDER_TYPE_BUY if side is Side.BUY else mt5api.ORDER_TYPE_SELL


def request_dict(
    req: OrderRequest,
    *,
    price: float,
    filling: int,
    position_type: int | None = None,
    position_volume: float | None = None,
) -> dict[str, Any]:
    """The ``order_send``/``order_check`` dict for a request.

    For CLOSE, ``position_type`` is the open position's type (the deal goes the
    other way) and ``position_volume`` its size (used when ``volume`` is 0).
    """
    if req.action is OrderAction.SLTP:
        return {
            "action": mt5api.TRADE_ACTION_SLTP,
            "symbol": req.symbol,
            "position": int(req.position or 0),
            "sl": float(req.sl or 0.0),
            "tp": float(req.tp or 0.0),
            "magic": int(req.magic),
        }
    out: dict[str, Any] = {
        "action": mt5api.TRADE_ACTION_DEAL,
        "symbol": req.symbol,
        "price": float(price),
        "deviation": int(req.deviation),
        "magic": int(req.magic),
        "comment": req.mt5_comment,
        "type_time": mt5api.ORDER_TIME_GTC,
        "type_filling": filling,
    }
    if req.action is OrderAction.CLOSE:
        closing_buy = position_type == mt5api.POSITION_TYPE_BUY
        out["type"] = mt5api.ORDER_TYPE_SELL if closing_buy else mt5api.ORDER_TYPE_BUY
        out["position"] = int(req.position or 0)
        out["volume"] = float(req.volume or position_volume or 0.0)
    else:
        out["type"] = order_type(req.side or Side.BUY)
        out["volume"] = float(req.volume)
        out["sl"] = float(req.sl or 0.0)
        out["tp"] = float(req.tp or 0.0)
    return out
