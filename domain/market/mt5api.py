"""The MetaTrader5 python-module surface: constants, record layouts, dtypes.

One source for both sides: the simulated module produces these shapes, the
converter (:mod:`domain.market.convert`) consumes them, and the bridge
serializes them. Names and values are those of the real ``MetaTrader5``
package (field lists are the subset the gateways use, in the real order).
"""

from __future__ import annotations

from collections import namedtuple
from typing import Final

import numpy as np

# Timeframes
TIMEFRAME_M1: Final = 1
TIMEFRAME_M2: Final = 2
TIMEFRAME_M3: Final = 3
TIMEFRAME_M4: Final = 4
TIMEFRAME_M5: Final = 5
TIMEFRAME_M6: Final = 6
TIMEFRAME_M10: Final = 10
TIMEFRAME_M12: Final = 12
TIMEFRAME_M15: Final = 15
TIMEFRAME_M20: Final = 20
TIMEFRAME_M30: Final = 30
TIMEFRAME_H1: Final = 0x4001
TIMEFRAME_H2: Final = 0x4002
TIMEFRAME_H3: Final = 0x4003
TIMEFRAME_H4: Final = 0x4004
TIMEFRAME_H6: Final = 0x4006
TIMEFRAME_H8: Final = 0x4008
TIMEFRAME_H12: Final = 0x400C
TIMEFRAME_D1: Final = 0x4018
TIMEFRAME_W1: Final = 0x8001
TIMEFRAME_MN1: Final = 0xC001


def timeframe_seconds(tf: int) -> int | None:
    """Bar length of an MT5 timeframe constant; None for W1/MN1 and unknowns."""
    if 1 <= tf <= 30:
        return tf * 60
    if 0x4001 <= tf <= 0x4018:
        return (tf - 0x4000) * 3600
    return None


# Orders and trade actions
ORDER_TYPE_BUY: Final = 0
ORDER_TYPE_SELL: Final = 1
TRADE_ACTION_DEAL: Final = 1
TRADE_ACTION_PENDING: Final = 5
TRADE_ACTION_SLTP: Final = 6
TRADE_ACTION_MODIFY: Final = 7
TRADE_ACTION_REMOVE: Final = 8
TRADE_ACTION_CLOSE_BY: Final = 10
ORDER_FILLING_FOK: Final = 0
ORDER_FILLING_IOC: Final = 1
ORDER_FILLING_RETURN: Final = 2
ORDER_TIME_GTC: Final = 0
SYMBOL_FILLING_FOK: Final = 1
SYMBOL_FILLING_IOC: Final = 2

# Positions and deals
POSITION_TYPE_BUY: Final = 0
POSITION_TYPE_SELL: Final = 1
DEAL_TYPE_BUY: Final = 0
DEAL_TYPE_SELL: Final = 1
DEAL_TYPE_BALANCE: Final = 2
DEAL_ENTRY_IN: Final = 0
DEAL_ENTRY_OUT: Final = 1
DEAL_ENTRY_INOUT: Final = 2
DEAL_ENTRY_OUT_BY: Final = 3
DEAL_REASON_CLIENT: Final = 0
DEAL_REASON_EXPERT: Final = 3
DEAL_REASON_SL: Final = 4
DEAL_REASON_TP: Final = 5
DEAL_REASON_SO: Final = 6

# Symbols and accounts
SYMBOL_CALC_MODE_FOREX: Final = 0
SYMBOL_CALC_MODE_CFD: Final = 2
SYMBOL_CALC_MODE_CFDLEVERAGE: Final = 4
SYMBOL_TRADE_MODE_DISABLED: Final = 0
SYMBOL_TRADE_MODE_CLOSEONLY: Final = 3
SYMBOL_TRADE_MODE_FULL: Final = 4
ACCOUNT_TRADE_MODE_DEMO: Final = 0
ACCOUNT_TRADE_MODE_REAL: Final = 2
ACCOUNT_MARGIN_MODE_RETAIL_HEDGING: Final = 2
ACCOUNT_STOPOUT_MODE_PERCENT: Final = 0

# Trade server return codes (the module's TRADE_RETCODE_* names)
TRADE_RETCODE_REQUOTE: Final = 10004
TRADE_RETCODE_REJECT: Final = 10006
TRADE_RETCODE_DONE: Final = 10009
TRADE_RETCODE_ERROR: Final = 10011
TRADE_RETCODE_TIMEOUT: Final = 10012
TRADE_RETCODE_INVALID: Final = 10013
TRADE_RETCODE_INVALID_VOLUME: Final = 10014
TRADE_RETCODE_INVALID_PRICE: Final = 10015
TRADE_RETCODE_INVALID_STOPS: Final = 10016
TRADE_RETCODE_TRADE_DISABLED: Final = 10017
TRADE_RETCODE_MARKET_CLOSED: Final = 10018
TRADE_RETCODE_NO_MONEY: Final = 10019
TRADE_RETCODE_PRICE_CHANGED: Final = 10020
TRADE_RETCODE_PRICE_OFF: Final = 10021
TRADE_RETCODE_CONNECTION: Final = 10031
TRADE_RETCODE_INVALID_FILL: Final = 10030
TRADE_RETCODE_NO_CHANGES: Final = 10025
TRADE_RETCODE_POSITION_CLOSED: Final = 10036

# last_error() codes
RES_S_OK: Final = 1
RES_E_FAIL: Final = -1
RES_E_INVALID_PARAMS: Final = -2
RES_E_NO_MEMORY: Final = -3
RES_E_NOT_FOUND: Final = -4
RES_E_INVALID_VERSION: Final = -5
RES_E_AUTH_FAILED: Final = -6
RES_E_UNSUPPORTED: Final = -7
RES_E_AUTO_TRADING_DISABLED: Final = -8
RES_E_INTERNAL_FAIL: Final = -10000
RES_E_INTERNAL_FAIL_SEND: Final = -10001
RES_E_INTERNAL_FAIL_RECEIVE: Final = -10002
RES_E_INTERNAL_FAIL_INIT: Final = -10003
RES_E_INTERNAL_FAIL_CONNECT: Final = -10004
RES_E_INTERNAL_FAIL_TIMEOUT: Final = -10005

# copy_rates_* result layout, exactly the real module's
RATES_DTYPE: Final = np.dtype(
    [
        ("time", "<i8"),
        ("open", "<f8"),
        ("high", "<f8"),
        ("low", "<f8"),
        ("close", "<f8"),
        ("tick_volume", "<u8"),
        ("spread", "<i4"),
        ("real_volume", "<u8"),
    ]
)

Tick = namedtuple("Tick", "time bid ask last volume time_msc flags volume_real")
SymbolInfo = namedtuple(
    "SymbolInfo",
    "custom select visible time digits spread spread_float trade_calc_mode trade_mode "
    "trade_stops_level trade_freeze_level trade_exemode filling_mode order_mode bid ask last "
    "point trade_tick_value trade_tick_size trade_contract_size volume_min volume_max "
    "volume_step swap_long swap_short margin_initial margin_maintenance margin_hedged "
    "currency_base currency_profit currency_margin description name path",
)
AccountInfo = namedtuple(
    "AccountInfo",
    "login trade_mode leverage limit_orders margin_so_mode trade_allowed trade_expert "
    "margin_mode currency_digits fifo_close balance credit profit equity margin margin_free "
    "margin_level margin_so_call margin_so_so margin_initial margin_maintenance assets "
    "liabilities commission_blocked name server currency company",
)
TradePosition = namedtuple(
    "TradePosition",
    "ticket time time_msc time_update time_update_msc type magic identifier reason volume "
    "price_open sl tp price_current swap profit symbol comment external_id",
)
TradeDeal = namedtuple(
    "TradeDeal",
    "ticket order time time_msc type entry magic position_id reason volume price commission "
    "swap profit fee symbol comment external_id",
)
TradeRequest = namedtuple(
    "TradeRequest",
    "action magic order symbol volume price stoplimit sl tp deviation type type_filling "
    "type_time expiration comment position position_by",
)
OrderSendResult = namedtuple(
    "OrderSendResult",
    "retcode deal order volume price bid ask comment request_id retcode_external request",
)
OrderCheckResult = namedtuple(
    "OrderCheckResult",
    "retcode balance equity profit margin margin_free margin_level comment request",
)
TerminalInfo = namedtuple(
    "TerminalInfo",
    "community_account community_connection connected dlls_allowed trade_allowed "
    "tradeapi_disabled email_enabled ftp_enabled notifications_enabled mqid build maxbars "
    "codepage ping_last community_balance retransmission company name language path "
    "data_path commondata_path",
)

# Every function of the module surface the gateways use (the bridge allow-list).
FUNCTIONS: Final = frozenset(
    {
        "initialize",
        "login",
        "shutdown",
        "version",
        "last_error",
        "terminal_info",
        "account_info",
        "symbols_total",
        "symbols_get",
        "symbol_info",
        "symbol_info_tick",
        "symbol_select",
        "copy_rates_from",
        "copy_rates_from_pos",
        "copy_rates_range",
        "order_calc_margin",
        "order_calc_profit",
        "order_check",
        "order_send",
        "positions_total",
        "positions_get",
        "history_deals_total",
        "history_deals_get",
    }
)
