"""A ``MetaTrader5``-module double backed by the simulated terminal.

:class:`SimMT5` instances behave like the real module: the same function
names and keyword arguments, namedtuple and numpy structured-array results,
``None`` plus ``last_error()`` on failure, ``TIMEFRAME_*``/``ORDER_TYPE_*``/
``TRADE_ACTION_*``/``TRADE_RETCODE_*`` constants. Like the real module, an
instance has one current login; make one instance per logged-in account.
It is injected into :class:`domain.market.native.NativeGateway` in tests and
served over rpyc by :mod:`domain.market.bridge_server`.
"""

from __future__ import annotations

import contextlib
import fnmatch
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from domain.market import mt5api

if TYPE_CHECKING:
    from domain.market.sim import SimTerminal

_ERR_OK = (mt5api.RES_S_OK, "Success")
_ERR_NO_IPC = (mt5api.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
_ERR_TIMEOUT = (mt5api.RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout")
_ERR_PARAMS = (mt5api.RES_E_INVALID_PARAMS, "Invalid params")
_ERR_NOT_FOUND = (mt5api.RES_E_NOT_FOUND, "Terminal: Not found")
_ERR_AUTH = (mt5api.RES_E_AUTH_FAILED, "Authorization failed")
_ERR_NO_ACCOUNT = (mt5api.RES_E_FAIL, "Terminal: Call failed (no account)")

_CONSTANTS = {k: v for k, v in vars(mt5api).items() if k.isupper() and isinstance(v, int)}


def _seconds(when: Any) -> int:
    if isinstance(when, datetime):
        from domain.market.convert import epoch_seconds

        return epoch_seconds(when)
    if isinstance(when, bool) or not isinstance(when, (int, float, np.integer, np.floating)):
        raise TypeError("date must be a datetime or epoch seconds")
    return int(when)


def _group_match(name: str, group: str | None) -> bool:
    """MT5 group filter: comma-separated masks, ``!mask`` excludes."""
    if not group:
        return True
    ok = False
    for mask in (m.strip() for m in group.split(",")):
        if mask.startswith("!") and fnmatch.fnmatchcase(name, mask[1:]):
            return False
        if mask and not mask.startswith("!") and fnmatch.fnmatchcase(name, mask):
            ok = True
    return ok


class SimMT5:
    """One "MetaTrader5 module" connected to a :class:`SimTerminal`."""

    locals().update(_CONSTANTS)
    __version__ = "5.0.4410-sim"

    def __init__(self, terminal: SimTerminal) -> None:
        self._t = terminal
        self._login: int | None = None
        self._connected = False
        self._error: tuple[int, str] = _ERR_OK

    # -- plumbing -----------------------------------------------------------------
    def _fail(self, error: tuple[int, str]) -> None:
        self._error = error
        return None

    def _gate(self) -> bool:
        """Apply injected faults and the connection state to one call."""
        fault = self._t.take_fault(("disconnect", "timeout"))
        if fault == "disconnect":
            self._connected = False
            self._error = _ERR_NO_IPC
            return False
        if fault == "timeout":
            self._error = _ERR_TIMEOUT
            return False
        if not self._connected:
            self._error = _ERR_NO_IPC
            return False
        self._error = _ERR_OK
        return True

    def _account_gate(self) -> bool:
        if not self._gate():
            return False
        if self._login is None:
            self._error = _ERR_NO_ACCOUNT
            return False
        return True

    def _symbol(self, symbol: Any) -> Any:
        return self._t.symbol_def(symbol) if isinstance(symbol, str) else None

    # -- session ------------------------------------------------------------------
    def initialize(
        self,
        path: str | None = None,
        *,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        timeout: int = 60_000,
        portable: bool = False,
    ) -> bool:
        fault = self._t.take_fault(("disconnect", "timeout"))
        if fault is not None:
            self._error = _ERR_NO_IPC if fault == "disconnect" else _ERR_TIMEOUT
            return False
        if login is not None:
            if not self._authorize(login, password, server):
                return False
        elif self._login is None and self._t.logins():
            self._login = self._t.logins()[0]
        self._connected = True
        self._error = _ERR_OK
        return True

    def _authorize(self, login: Any, password: Any, server: Any) -> bool:
        if not isinstance(login, int) or not isinstance(server, (str, type(None))):
            self._error = _ERR_AUTH
            return False
        if not self._t.authenticate(login, password, server):
            self._error = _ERR_AUTH
            return False
        self._login = login
        return True

    def login(self, login: int, password: str | None = None, server: str | None = None, timeout: int = 60_000) -> bool:
        if not self._gate():
            return False
        return self._authorize(login, password, server)

    def shutdown(self) -> None:
        self._connected = False
        self._error = _ERR_OK

    def version(self) -> tuple[int, int, str] | None:
        if not self._gate():
            return None
        return (500, 4410, "14 Jun 2024")

    def last_error(self) -> tuple[int, str]:
        return self._error

    def terminal_info(self) -> Any:
        if not self._gate():
            return None
        return mt5api.TerminalInfo(
            False,
            False,
            True,
            False,
            True,
            False,
            False,
            False,
            False,
            False,
            4410,
            100_000,
            0,
            1200,
            0.0,
            0.0,
            self._t.company,
            "Hybrid Trader Simulated Terminal",
            "English",
            "sim",
            "sim",
            "sim",
        )

    def account_info(self) -> Any:
        if not self._account_gate():
            return None
        return self._t.account_info(self._login)  # type: ignore[arg-type]

    # -- symbols ------------------------------------------------------------------
    def _symbol_info(self, name: str) -> Any:
        d = self._t.symbol_def(name)
        assert d is not None
        s = d.spec
        q = self._t.quote(name)
        t, bid, ask, spread = q if q else (0, 0.0, 0.0, d.spread)
        tick_value = s.contract_size * s.point
        if bid:  # MT5 gives the value of one point of one lot in the account currency
            currency = self._t.account_currency(self._login) if self._login is not None else "USD"
            with contextlib.suppress(LookupError):
                tick_value *= self._t.rate(s.currency_profit, currency)
        return mt5api.SymbolInfo(
            False,
            True,
            True,
            t // 1000,
            s.digits,
            spread,
            True,
            d.calc_mode,
            self._t.trade_mode(name),
            s.stops_level,
            0,
            2,
            mt5api.SYMBOL_FILLING_FOK | mt5api.SYMBOL_FILLING_IOC,
            127,
            bid,
            ask,
            0.0,
            s.point,
            tick_value,
            s.point,
            s.contract_size,
            s.volume_min,
            s.volume_max,
            s.volume_step,
            0.0,
            0.0,
            0.0,
            0.0,
            s.contract_size,
            s.currency_base,
            s.currency_profit,
            s.currency_margin,
            s.description,
            s.name,
            d.path,
        )

    def symbols_total(self) -> int | None:
        if not self._gate():
            return None
        return len(self._t.symbol_names())

    def symbols_get(self, group: str | None = None) -> tuple[Any, ...] | None:
        if not self._gate():
            return None
        return tuple(self._symbol_info(n) for n in self._t.symbol_names() if _group_match(n, group))

    def symbol_info(self, symbol: str) -> Any:
        if not self._gate():
            return None
        if self._symbol(symbol) is None:
            return self._fail(_ERR_NOT_FOUND)
        return self._symbol_info(symbol)

    def symbol_select(self, symbol: str, enable: bool = True) -> bool:
        if not self._gate():
            return False
        return self._symbol(symbol) is not None

    def symbol_info_tick(self, symbol: str) -> Any:
        if not self._gate():
            return None
        if self._symbol(symbol) is None:
            return self._fail(_ERR_NOT_FOUND)
        q = self._t.quote(symbol)
        if q is None:
            return self._fail(_ERR_NOT_FOUND)
        t, bid, ask, _ = q
        return mt5api.Tick(t // 1000, bid, ask, 0.0, 0, t, 6, 0.0)

    # -- history ------------------------------------------------------------------
    def _rates_args(self, symbol: Any, timeframe: Any) -> int | None:
        if self._symbol(symbol) is None:
            self._error = _ERR_NOT_FOUND
            return None
        tf_s = mt5api.timeframe_seconds(timeframe) if isinstance(timeframe, int) else None
        if tf_s is None:
            self._error = _ERR_PARAMS
        return tf_s

    def copy_rates_from_pos(self, symbol: str, timeframe: int, start_pos: int, count: int) -> np.ndarray | None:
        if not self._gate():
            return None
        tf_s = self._rates_args(symbol, timeframe)
        if tf_s is None:
            return None
        if not (isinstance(start_pos, int) and isinstance(count, int)) or start_pos < 0 or count < 0:
            return self._fail(_ERR_PARAMS)
        return self._t.rates_from_pos(symbol, tf_s, start_pos, count)

    def copy_rates_from(self, symbol: str, timeframe: int, date_from: Any, count: int) -> np.ndarray | None:
        if not self._gate():
            return None
        tf_s = self._rates_args(symbol, timeframe)
        if tf_s is None:
            return None
        try:
            start = _seconds(date_from)
        except TypeError:
            return self._fail(_ERR_PARAMS)
        return self._t.rates_from(symbol, tf_s, start, int(count))

    def copy_rates_range(self, symbol: str, timeframe: int, date_from: Any, date_to: Any) -> np.ndarray | None:
        if not self._gate():
            return None
        tf_s = self._rates_args(symbol, timeframe)
        if tf_s is None:
            return None
        try:
            start, end = _seconds(date_from), _seconds(date_to)
        except TypeError:
            return self._fail(_ERR_PARAMS)
        return self._t.rates_range(symbol, tf_s, start, end)

    # -- trading ------------------------------------------------------------------
    def order_calc_margin(self, action: int, symbol: str, volume: float, price: float) -> float | None:
        if not self._account_gate():
            return None
        if self._symbol(symbol) is None:
            return self._fail(_ERR_NOT_FOUND)
        return self._t.calc_margin(self._login, int(action), symbol, float(volume), float(price))  # type: ignore[arg-type]

    def order_calc_profit(
        self, action: int, symbol: str, volume: float, price_open: float, price_close: float
    ) -> float | None:
        if not self._account_gate():
            return None
        if self._symbol(symbol) is None:
            return self._fail(_ERR_NOT_FOUND)
        return self._t.calc_profit(
            self._login,
            int(action),
            symbol,
            float(volume),
            float(price_open),
            float(price_close),  # type: ignore[arg-type]
        )

    def order_check(self, request: dict[str, Any]) -> Any:
        if not self._account_gate():
            return None
        if not isinstance(request, dict):
            return self._fail(_ERR_PARAMS)
        return self._t.order_check(self._login, request)  # type: ignore[arg-type]

    def order_send(self, request: dict[str, Any]) -> Any:
        if not self._account_gate():
            return None
        if not isinstance(request, dict):
            return self._fail(_ERR_PARAMS)
        requote = self._t.take_fault(("requote",)) is not None
        return self._t.order_send(self._login, request, requote=requote)  # type: ignore[arg-type]

    # -- positions and deals ---------------------------------------------------------
    def positions_total(self) -> int | None:
        found = self.positions_get()
        return None if found is None else len(found)

    def positions_get(self, symbol: str | None = None, group: str | None = None, ticket: int | None = None) -> Any:
        if not self._account_gate():
            return None
        found = self._t.positions(self._login, symbol=symbol, ticket=ticket)  # type: ignore[arg-type]
        return tuple(p for p in found if _group_match(p.symbol, group))

    def history_deals_total(self, date_from: Any, date_to: Any) -> int | None:
        found = self.history_deals_get(date_from, date_to)
        return None if found is None else len(found)

    def history_deals_get(
        self,
        date_from: Any = None,
        date_to: Any = None,
        group: str | None = None,
        ticket: int | None = None,
        position: int | None = None,
    ) -> Any:
        if not self._account_gate():
            return None
        try:
            start = _seconds(date_from) if date_from is not None else 0
            end = _seconds(date_to) if date_to is not None else 2**62
        except TypeError:
            return self._fail(_ERR_PARAMS)
        found = self._t.deals(self._login, start, end, position=position)  # type: ignore[arg-type]
        return tuple(
            d
            for d in found
            if (ticket is None or d.ticket == ticket) and (group is None or _group_match(d.symbol, group))
        )


def create(terminal: SimTerminal | None = None, *, seed: int = 0) -> SimMT5:
    """A module double over ``terminal`` (a fresh seeded terminal when None)."""
    if terminal is None:
        from domain.market.sim import SimTerminal

        terminal = SimTerminal(seed)
    return SimMT5(terminal)
