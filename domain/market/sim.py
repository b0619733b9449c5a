"""The simulated MT5 terminal: one trade server, many demo accounts.

:class:`SimTerminal` holds the market (:class:`~domain.market.prices.PriceEngine`)
and any number of hedging demo accounts, and executes MT5 trade requests with
MT5 semantics: fills at bid/ask with deviation and requotes, retcodes,
margin with leverage in the account currency, P/L converted from the
symbol's profit currency, SL/TP and stop-out triggered as the price moves.
Time comes from an injectable clock, so tests and backtests step it.
Results are MT5 records (:mod:`domain.market.mt5api`); the module facade
(:class:`domain.market.sim_module.SimMT5`) and :class:`SimGateway` sit on top.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import math
import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from domain.market import mt5api
from domain.market.clock import Clock, ManualClock, SystemClock
from domain.market.mt5client import ModuleClient, ModuleGateway
from domain.market.prices import PER_HOUR, SUBSTEP_MS, PriceEngine, ReplaySeries
from domain.market.sim_module import SimMT5
from domain.market.symbols import ACCOUNT_CURRENCIES, SymbolDef

FAULTS = frozenset({"disconnect", "timeout", "requote"})
T = TypeVar("T")
_R = mt5api


def packaged_history(name: str = "EURUSD_H1.csv") -> Path:
    """Path of a history CSV shipped in ``domain/market/data``."""
    return Path(str(resources.files("domain.market.data").joinpath(name)))


def default_replay() -> dict[str, Path]:
    """EURUSD replays the packaged real H1 history (2017-04 … 2018-02)."""
    return {"EURUSD": packaged_history()}


@dataclass
class _Position:
    ticket: int
    symbol: str
    type: int
    volume: float
    price_open: float
    sl: float
    tp: float
    time_msc: int
    update_msc: int
    magic: int
    comment: str
    reason: int


@dataclass
class _Account:
    login: int
    password: str | None  # a salted verifier (see _verifier), never the password itself
    name: str
    currency: str
    leverage: int
    balance: float
    positions: dict[int, _Position] = field(default_factory=dict)
    deals: list[Any] = field(default_factory=list)
    done_g: int | None = None  # last substep whose SL/TP/stop-out were processed for this account
    real: bool = False  # reports ACCOUNT_TRADE_MODE_REAL (a broker's live account) instead of DEMO
    server: str | None = None  # the trade server it belongs to; None: the terminal's own

    @property
    def digits(self) -> int:
        return 0 if self.currency == "JPY" else 2


@dataclass
class _Fault:
    kind: str
    count: int | None
    until_ms: int | None


class SimTerminal:
    """A deterministic simulated MT5 trade server (thread-safe)."""

    server = "HybridTrader-Sim"
    company = "Hybrid Trader Simulated Markets"

    def __init__(
        self,
        seed: int = 0,
        *,
        clock: Clock | None = None,
        replay: dict[str, str | Path | ReplaySeries] | None = None,
        universe: dict[str, SymbolDef] | None = None,
        stop_out_level: float = 50.0,
        margin_call_level: float = 100.0,
    ) -> None:
        series = {
            name: src if isinstance(src, ReplaySeries) else ReplaySeries.from_csv(src)
            for name, src in (replay or {}).items()
        }
        self.prices = PriceEngine(seed, universe=universe, replay=series)
        self.seed = int(seed)
        self.clock: Clock = clock or SystemClock()
        self.stop_out_level = stop_out_level
        self.margin_call_level = margin_call_level
        self._lock = threading.RLock()
        self._accounts: dict[int, _Account] = {}
        # Id sources; a shared deployment swaps in blocks reserved in the database (domain/trading/demo.py).
        self._logins: Iterator[int] = itertools.count(5_000_001)
        self._orders: Iterator[int] = itertools.count(100_000_001)
        self._deals: Iterator[int] = itertools.count(200_000_001)
        self._faults: list[_Fault] = []
        self._disabled: set[str] = set()
        self._at_ms: int | None = None

    # -- time ---------------------------------------------------------------------
    def now_ms(self) -> int:
        """The terminal's time; while catching up, the instant being replayed."""
        return self._at_ms if self._at_ms is not None else int(self.clock())

    def advance(self, seconds: float) -> int:
        """Step a manual clock and let SL/TP/stop-out catch up; returns now (ms)."""
        if not isinstance(self.clock, ManualClock):
            raise TypeError("advance() needs a ManualClock")
        with self._lock:
            self.clock.advance(seconds)
            self._sync()
            return self.now_ms()

    # -- faults -------------------------------------------------------------------
    def inject(self, fault: str, count: int | None = 1, *, seconds: float | None = None) -> None:
        """Make the next ``count`` calls fail (or all calls for ``seconds``).

        ``disconnect``: the module loses its terminal connection (calls return
        None, last_error -10004). ``timeout``: calls time out (-10005).
        ``requote``: order_send answers REQUOTE.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {sorted(FAULTS)}")
        with self._lock:
            until = self.now_ms() + int(seconds * 1000) if seconds is not None else None
            self._faults.append(_Fault(fault, None if seconds is not None else count, until))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def take_fault(self, kinds: tuple[str, ...]) -> str | None:
        """Consume and return the first active fault of ``kinds``, if any."""
        with self._lock:
            now = self.now_ms()
            self._faults = [
                f for f in self._faults if (f.count is None or f.count > 0) and (f.until_ms is None or now < f.until_ms)
            ]
            for f in self._faults:
                if f.kind in kinds:
                    if f.count is not None:
                        f.count -= 1
                    return f.kind
            return None

    # -- symbols and quotes -------------------------------------------------------
    def symbol_names(self) -> list[str]:
        return list(self.prices.universe)

    def symbol_def(self, name: str) -> SymbolDef | None:
        return self.prices.universe.get(name)

    def set_trading(self, symbol: str, enabled: bool) -> None:
        """Switch a symbol's trade mode between FULL and DISABLED."""
        with self._lock:
            (self._disabled.discard if enabled else self._disabled.add)(symbol)

    def trade_mode(self, symbol: str) -> int:
        return _R.SYMBOL_TRADE_MODE_DISABLED if symbol in self._disabled else _R.SYMBOL_TRADE_MODE_FULL

    def quote(self, symbol: str) -> tuple[int, float, float, int] | None:
        """(time_msc, bid, ask, spread points) of the last tick, or None."""
        with self._lock:
            return self._quote(symbol)

    def _quote(self, symbol: str, now_ms: int | None = None) -> tuple[int, float, float, int] | None:
        q = self.prices.quote(symbol, self.now_ms() if now_ms is None else now_ms)
        if q is None:
            return None
        spec = self.prices.universe[symbol].spec
        t, bid, spread = q
        return t, bid, round(bid + spread * spec.point, spec.digits), spread

    def market_open(self, symbol: str) -> bool:
        with self._lock:
            return self.prices.is_open(symbol, self.now_ms())

    def rates_from_pos(self, symbol: str, tf_s: int, start: int, count: int) -> np.ndarray:
        with self._lock:
            now = self.now_ms()
            bars = self.prices.rates_back(symbol, tf_s, now // 1000, now, start + count)
            return bars[: max(len(bars) - start, 0)]

    def rates_from(self, symbol: str, tf_s: int, date_from: int, count: int) -> np.ndarray:
        with self._lock:
            return self.prices.rates_back(symbol, tf_s, date_from, self.now_ms(), count)

    def rates_range(self, symbol: str, tf_s: int, date_from: int, date_to: int) -> np.ndarray:
        with self._lock:
            return self.prices.rates_range(symbol, tf_s, date_from, date_to, self.now_ms())

    # -- conversion and margin ----------------------------------------------------
    def _mid(self, symbol: str) -> float:
        q = self._quote(symbol)
        if q is None:
            raise LookupError(f"no quote for {symbol}")
        return (q[1] + q[2]) / 2

    def rate(self, src: str, dst: str) -> float:
        """Mid rate converting ``src`` currency into ``dst`` (via USD if needed)."""
        if src == dst:
            return 1.0
        with self._lock:
            return self._rate(src, dst)

    def _rate(self, src: str, dst: str) -> float:
        if src == dst:
            return 1.0
        u = self.prices.universe
        if src + dst in u:
            return self._mid(src + dst)
        if dst + src in u:
            return 1.0 / self._mid(dst + src)
        if "USD" in (src, dst):
            raise LookupError(f"no symbol converts {src} into {dst}")
        return self._rate(src, "USD") * self._rate("USD", dst)

    def _margin(self, acc: _Account, symbol: str, volume: float, price: float) -> float:
        d = self.prices.universe[symbol]
        spec = d.spec
        if d.calc_mode == _R.SYMBOL_CALC_MODE_FOREX:
            raw = volume * spec.contract_size * spec.margin_rate / acc.leverage
        elif d.calc_mode == _R.SYMBOL_CALC_MODE_CFD:
            raw = volume * spec.contract_size * price * spec.margin_rate
        else:
            raw = volume * spec.contract_size * price * spec.margin_rate / acc.leverage
        return raw * self.rate(spec.currency_margin, acc.currency)

    def _profit(self, acc: _Account, symbol: str, type_: int, volume: float, open_: float, close: float) -> float:
        spec = self.prices.universe[symbol].spec
        move = close - open_ if type_ == _R.POSITION_TYPE_BUY else open_ - close
        return round(move * volume * spec.contract_size * self.rate(spec.currency_profit, acc.currency), acc.digits)

    def _close_price(self, pos: _Position) -> float:
        q = self._quote(pos.symbol)
        assert q is not None
        return q[1] if pos.type == _R.POSITION_TYPE_BUY else q[2]

    def _state(self, acc: _Account) -> dict[str, float]:
        profit = margin = 0.0
        for p in acc.positions.values():
            price = self._close_price(p)
            profit += self._profit(acc, p.symbol, p.type, p.volume, p.price_open, price)
            q = self._quote(p.symbol)
            assert q is not None
            margin += self._margin(acc, p.symbol, p.volume, q[2] if p.type == _R.POSITION_TYPE_BUY else q[1])
        equity = round(acc.balance + profit, acc.digits)
        margin = round(margin, acc.digits)
        return {
            "balance": round(acc.balance, acc.digits),
            "profit": round(profit, acc.digits),
            "equity": equity,
            "margin": margin,
            "margin_free": round(equity - margin, acc.digits),
            "margin_level": round(equity / margin * 100, 2) if margin > 0 else 0.0,
        }

    # -- accounts -------------------------------------------------------------------
    def open_demo_account(
        self,
        balance: float = 10_000.0,
        currency: str = "USD",
        leverage: int = 100,
        *,
        password: str | None = None,
        name: str = "Demo account",
        login: int | None = None,
    ) -> int:
        """Open a hedging demo account funded with ``balance``; returns its login (the next free
        one unless ``login`` is given)."""
        if currency not in ACCOUNT_CURRENCIES:
            raise ValueError(f"account currency must be one of {sorted(ACCOUNT_CURRENCIES)}")
        if balance <= 0 or not 1 <= leverage <= 3000:
            raise ValueError("balance must be positive and leverage within 1..3000")
        with self._lock:
            login = next(self._logins) if login is None else int(login)
            if login in self._accounts:
                raise ValueError(f"account {login} exists")
            verifier = None if password is None else _verifier(password, secrets.token_hex(8))
            acc = _Account(login, verifier, name, currency, int(leverage), 0.0, done_g=self.now_ms() // SUBSTEP_MS)
            self._accounts[login] = acc
            self._book_balance(acc, float(balance), "Demo deposit")
            return login

    def open_real_account(
        self,
        password: str,
        balance: float = 10_000.0,
        currency: str = "USD",
        leverage: int = 100,
        *,
        login: int | None = None,
        server: str | None = None,
        name: str = "Live account",
    ) -> int:
        """Open an account that reports itself as a broker's REAL account on ``server`` (the
        terminal's own when None); it always has a password. What ``bridge_server --sim --account``
        serves, and what tests link as a "live" account."""
        if not password:
            raise ValueError("a real account needs a password")
        login = self.open_demo_account(balance, currency, leverage, password=password, name=name, login=login)
        with self._lock:
            acc = self._accounts[login]
            acc.real = True
            acc.server = server if server not in (None, self.server) else None
        return login

    def server_of(self, login: int) -> str:
        acc = self._accounts.get(login)
        return self.server if acc is None or acc.server is None else acc.server

    def deposit(self, login: int, amount: float, comment: str = "Deposit") -> None:
        """Add (or with a negative amount, withdraw) balance."""
        with self._lock:
            self._book_balance(self._synced(login), float(amount), comment)

    def _book_balance(self, acc: _Account, amount: float, comment: str) -> None:
        now = self.now_ms()
        acc.balance = round(acc.balance + amount, acc.digits)
        acc.deals.append(
            _R.TradeDeal(
                next(self._deals),
                0,
                now // 1000,
                now,
                _R.DEAL_TYPE_BALANCE,
                _R.DEAL_ENTRY_IN,
                0,
                0,
                _R.DEAL_REASON_CLIENT,
                0.0,
                0.0,
                0.0,
                0.0,
                round(amount, acc.digits),
                0.0,
                "",
                comment,
                "",
            )
        )

    def _account(self, login: int) -> _Account:
        acc = self._accounts.get(login)
        if acc is None:
            raise KeyError(f"no account {login}")
        return acc

    def _synced(self, login: int) -> _Account:
        acc = self._account(login)
        self._sync_account(acc)
        return acc

    def account_currency(self, login: int) -> str:
        return self._account(login).currency

    def logins(self) -> list[int]:
        return list(self._accounts)

    def has_account(self, login: int) -> bool:
        return login in self._accounts

    def install_account(self, acc: _Account) -> None:
        """Put ``acc`` in place of the account with its login (state loaded from elsewhere)."""
        with self._lock:
            self._accounts[acc.login] = acc

    def authenticate(self, login: int, password: str | None, server: str | None = None) -> bool:
        """Whether ``password`` opens ``login`` (on ``server`` when given). A passwordless account (a
        platform demo account) opens only WITHOUT a password: any password offered for it is refused,
        so nobody can pass one off as their own live account."""
        acc = self._accounts.get(login)
        if acc is None:
            return False
        if server is not None and server != self.server_of(login):
            return False
        if acc.password is None:
            return password is None
        salt = acc.password.split("$", 2)[1]
        return password is not None and hmac.compare_digest(acc.password, _verifier(password, salt))

    def account_info(self, login: int) -> Any:
        with self._lock:
            acc = self._synced(login)
            s = self._state(acc)
            return _R.AccountInfo(
                login,
                _R.ACCOUNT_TRADE_MODE_REAL if acc.real else _R.ACCOUNT_TRADE_MODE_DEMO,
                acc.leverage,
                200,
                _R.ACCOUNT_STOPOUT_MODE_PERCENT,
                True,
                True,
                _R.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING,
                acc.digits,
                False,
                s["balance"],
                0.0,
                s["profit"],
                s["equity"],
                s["margin"],
                s["margin_free"],
                s["margin_level"],
                self.margin_call_level,
                self.stop_out_level,
                0.0,
                0.0,
                0.0,
                0.0,
                0.0,
                acc.name,
                self.server if acc.server is None else acc.server,
                acc.currency,
                self.company,
            )

    def positions(self, login: int, symbol: str | None = None, ticket: int | None = None) -> list[Any]:
        with self._lock:
            acc = self._synced(login)
            out = []
            for p in acc.positions.values():
                if (symbol is not None and p.symbol != symbol) or (ticket is not None and p.ticket != ticket):
                    continue
                price = self._close_price(p)
                out.append(
                    _R.TradePosition(
                        p.ticket,
                        p.time_msc // 1000,
                        p.time_msc,
                        p.update_msc // 1000,
                        p.update_msc,
                        p.type,
                        p.magic,
                        p.ticket,
                        p.reason,
                        p.volume,
                        p.price_open,
                        p.sl,
                        p.tp,
                        price,
                        0.0,
                        self._profit(acc, p.symbol, p.type, p.volume, p.price_open, price),
                        p.symbol,
                        p.comment,
                        "",
                    )
                )
            return out

    def deals(self, login: int, date_from: int, date_to: int, position: int | None = None) -> list[Any]:
        with self._lock:
            return [
                d
                for d in self._synced(login).deals
                if date_from <= d.time <= date_to and (position is None or d.position_id == position)
            ]

    def calc_margin(self, login: int, order_type: int, symbol: str, volume: float, price: float) -> float:
        with self._lock:
            acc = self._account(login)
            return round(self._margin(acc, symbol, volume, price), acc.digits)

    def calc_profit(
        self, login: int, order_type: int, symbol: str, volume: float, price_open: float, price_close: float
    ) -> float:
        with self._lock:
            return self._profit(self._account(login), symbol, order_type, volume, price_open, price_close)

    # -- trading --------------------------------------------------------------------
    def order_check(self, login: int, request: dict[str, Any]) -> Any:
        with self._lock:
            acc = self._synced(login)
            s = self._state(acc)
            code, comment, margin = self._validate(acc, request)
            after = s["margin"] + margin
            free = round(s["equity"] - after, acc.digits)
            level = round(s["equity"] / after * 100, 2) if after > 0 else 0.0
            return _R.OrderCheckResult(
                0 if code == _R.TRADE_RETCODE_DONE else code,
                s["balance"],
                s["equity"],
                s["profit"],
                round(margin, acc.digits),
                free,
                level,
                "Done" if code == _R.TRADE_RETCODE_DONE else comment,
                _trade_request(request),
            )

    def order_send(self, login: int, request: dict[str, Any], *, requote: bool = False) -> Any:
        with self._lock:
            acc = self._synced(login)
            code, comment, _ = self._validate(acc, request)
            symbol = str(request.get("symbol", ""))
            q = self._quote(symbol) if symbol in self.prices.universe else None
            bid, ask = (q[1], q[2]) if q else (0.0, 0.0)
            if code == _R.TRADE_RETCODE_DONE and requote:
                code, comment = _R.TRADE_RETCODE_REQUOTE, "Requote"
            if code != _R.TRADE_RETCODE_DONE:
                return _R.OrderSendResult(code, 0, 0, 0.0, 0.0, bid, ask, comment, 0, 0, _trade_request(request))
            action = int(request["action"])
            if action == _R.TRADE_ACTION_SLTP:
                pos = acc.positions[int(request["position"])]
                pos.sl, pos.tp = float(request.get("sl") or 0.0), float(request.get("tp") or 0.0)
                pos.update_msc = self.now_ms()
                return _R.OrderSendResult(
                    code, 0, 0, 0.0, 0.0, bid, ask, "Request executed", 0, 0, _trade_request(request)
                )
            type_ = int(request["type"])
            price = ask if type_ == _R.ORDER_TYPE_BUY else bid
            volume = float(request["volume"])
            comment = str(request.get("comment") or "")[:31]
            magic = int(request.get("magic") or 0)
            if request.get("position"):
                order, deal = self._close(
                    acc, acc.positions[int(request["position"])], volume, price, _R.DEAL_REASON_EXPERT, comment, magic
                )
            else:
                order, deal = self._open(acc, request, type_, volume, price, comment, magic)
            return _R.OrderSendResult(
                code, deal, order, volume, price, bid, ask, "Request executed", 0, 0, _trade_request(request)
            )

    def _validate(self, acc: _Account, r: dict[str, Any]) -> tuple[int, str, float]:
        """(retcode, comment, margin of a new position) for a request dict."""
        try:
            action = int(r.get("action", 0))
            symbol = str(r.get("symbol", ""))
            d = self.prices.universe.get(symbol)
            if d is None:
                return _R.TRADE_RETCODE_INVALID, "Unknown symbol", 0.0
            spec = d.spec
            if action not in (_R.TRADE_ACTION_DEAL, _R.TRADE_ACTION_SLTP):
                return _R.TRADE_RETCODE_INVALID, "Unsupported trade action", 0.0
            if self.trade_mode(symbol) == _R.SYMBOL_TRADE_MODE_DISABLED:
                return _R.TRADE_RETCODE_TRADE_DISABLED, "Trade disabled", 0.0
            if not self.prices.is_open(symbol, self.now_ms()):
                return _R.TRADE_RETCODE_MARKET_CLOSED, "Market closed", 0.0
            q = self._quote(symbol)
            if q is None:
                return _R.TRADE_RETCODE_PRICE_OFF, "No prices", 0.0
            bid, ask = q[1], q[2]
            pos = None
            if r.get("position") or action == _R.TRADE_ACTION_SLTP:
                pos = acc.positions.get(int(r.get("position") or 0))
                if pos is None:
                    return _R.TRADE_RETCODE_POSITION_CLOSED, "Position closed", 0.0
                if pos.symbol != symbol:
                    return _R.TRADE_RETCODE_INVALID, "Invalid request", 0.0
            if action == _R.TRADE_ACTION_SLTP:
                assert pos is not None
                sl, tp = float(r.get("sl") or 0.0), float(r.get("tp") or 0.0)
                if not _stops_ok(pos.type, sl, tp, bid, ask, spec.stops_level * spec.point):
                    return _R.TRADE_RETCODE_INVALID_STOPS, "Invalid stops", 0.0
                if math.isclose(sl, pos.sl) and math.isclose(tp, pos.tp):
                    return _R.TRADE_RETCODE_NO_CHANGES, "No changes", 0.0
                return _R.TRADE_RETCODE_DONE, "Done", 0.0
            type_ = int(r.get("type", -1))
            if type_ not in (_R.ORDER_TYPE_BUY, _R.ORDER_TYPE_SELL):
                return _R.TRADE_RETCODE_INVALID, "Invalid order type", 0.0
            filling = int(r.get("type_filling", _R.ORDER_FILLING_FOK))
            if filling not in (_R.ORDER_FILLING_FOK, _R.ORDER_FILLING_IOC):
                return _R.TRADE_RETCODE_INVALID_FILL, "Unsupported filling mode", 0.0
            volume = float(r.get("volume", 0.0))
            if not _volume_ok(volume, spec.volume_min, spec.volume_max, spec.volume_step):
                return _R.TRADE_RETCODE_INVALID_VOLUME, "Invalid volume", 0.0
            market = ask if type_ == _R.ORDER_TYPE_BUY else bid
            price = float(r.get("price") or 0.0)
            if price and abs(price - market) > int(r.get("deviation", 0)) * spec.point + spec.point / 10:
                return _R.TRADE_RETCODE_REQUOTE, "Requote", 0.0
            if pos is not None:
                if type_ == pos.type:
                    return _R.TRADE_RETCODE_INVALID, "Invalid request", 0.0
                if volume > pos.volume + 1e-9:
                    return _R.TRADE_RETCODE_INVALID_VOLUME, "Invalid volume", 0.0
                return _R.TRADE_RETCODE_DONE, "Done", 0.0
            sl, tp = float(r.get("sl") or 0.0), float(r.get("tp") or 0.0)
            if not _stops_ok(type_, sl, tp, bid, ask, spec.stops_level * spec.point):
                return _R.TRADE_RETCODE_INVALID_STOPS, "Invalid stops", 0.0
            margin = self._margin(acc, symbol, volume, market)
            if self._state(acc)["margin_free"] < margin:
                return _R.TRADE_RETCODE_NO_MONEY, "No money", margin
            return _R.TRADE_RETCODE_DONE, "Done", margin
        except (TypeError, ValueError):
            return _R.TRADE_RETCODE_INVALID, "Invalid request", 0.0

    def _open(
        self, acc: _Account, r: dict[str, Any], type_: int, volume: float, price: float, comment: str, magic: int
    ) -> tuple[int, int]:
        now = self.now_ms()
        order, deal = next(self._orders), next(self._deals)
        symbol = str(r["symbol"])
        acc.positions[order] = _Position(
            order,
            symbol,
            type_,
            volume,
            price,
            float(r.get("sl") or 0.0),
            float(r.get("tp") or 0.0),
            now,
            now,
            magic,
            comment,
            _R.DEAL_REASON_EXPERT,
        )
        acc.deals.append(
            _R.TradeDeal(
                deal,
                order,
                now // 1000,
                now,
                type_,
                _R.DEAL_ENTRY_IN,
                magic,
                order,
                _R.DEAL_REASON_EXPERT,
                volume,
                price,
                0.0,
                0.0,
                0.0,
                0.0,
                symbol,
                comment,
                "",
            )
        )
        return order, deal

    def _close(
        self, acc: _Account, pos: _Position, volume: float, price: float, reason: int, comment: str, magic: int
    ) -> tuple[int, int]:
        now = self.now_ms()
        volume = min(volume or pos.volume, pos.volume)
        profit = self._profit(acc, pos.symbol, pos.type, volume, pos.price_open, price)
        order, deal = next(self._orders), next(self._deals)
        deal_type = _R.DEAL_TYPE_SELL if pos.type == _R.POSITION_TYPE_BUY else _R.DEAL_TYPE_BUY
        acc.deals.append(
            _R.TradeDeal(
                deal,
                order,
                now // 1000,
                now,
                deal_type,
                _R.DEAL_ENTRY_OUT,
                magic,
                pos.ticket,
                reason,
                volume,
                price,
                0.0,
                0.0,
                profit,
                0.0,
                pos.symbol,
                comment,
                "",
            )
        )
        acc.balance = round(acc.balance + profit, acc.digits)
        pos.volume = round(pos.volume - volume, 8)
        if pos.volume <= 1e-9:
            del acc.positions[pos.ticket]
        return order, deal

    # -- the market moves -------------------------------------------------------------
    def _sync(self) -> None:
        """Trigger SL/TP and stop-outs for every account, for every substep since its last sync."""
        now_g = self.now_ms() // SUBSTEP_MS
        behind: dict[int | None, list[_Account]] = {}
        for acc in self._accounts.values():
            if acc.done_g is None or acc.done_g < now_g:
                behind.setdefault(acc.done_g, []).append(acc)
        for done_g, accounts in behind.items():  # accounts last synced together catch up together
            self._catch_up(accounts, done_g, now_g)

    def _sync_account(self, acc: _Account) -> None:
        now_g = self.now_ms() // SUBSTEP_MS
        if acc.done_g is None or acc.done_g < now_g:
            self._catch_up([acc], acc.done_g, now_g)

    def _catch_up(self, accounts: list[_Account], done_g: int | None, now_g: int) -> None:
        if done_g is not None:
            g = done_g + 1
            try:
                while g <= now_g:
                    end = min(now_g, g + PER_HOUR - 1)
                    self._process(g, end, accounts)
                    g = end + 1
            finally:
                self._at_ms = None
        for acc in accounts:
            acc.done_g = now_g

    def _process(self, g0: int, g1: int, accounts: list[_Account]) -> None:
        events: list[tuple[int, int, _Account, _Position, float, int]] = []
        paths: dict[str, tuple[np.ndarray, ...]] = {}
        for acc in accounts:
            for pos in acc.positions.values():
                if not (pos.sl or pos.tp):
                    continue
                if pos.symbol not in paths:
                    paths[pos.symbol] = self.prices.path(pos.symbol, g0, g1)
                gs, bid, is_open, spread = paths[pos.symbol]
                spec = self.prices.universe[pos.symbol].spec
                if pos.type == _R.POSITION_TYPE_BUY:
                    px = bid
                    sl_hit = (px <= pos.sl) if pos.sl else np.zeros(len(px), bool)
                    tp_hit = (px >= pos.tp) if pos.tp else np.zeros(len(px), bool)
                else:
                    px = np.round(bid + spread * spec.point, spec.digits)
                    sl_hit = (px >= pos.sl) if pos.sl else np.zeros(len(px), bool)
                    tp_hit = (px <= pos.tp) if pos.tp else np.zeros(len(px), bool)
                hit = np.flatnonzero(is_open & (sl_hit | tp_hit))
                if hit.size:
                    i = int(hit[0])
                    reason = _R.DEAL_REASON_SL if sl_hit[i] else _R.DEAL_REASON_TP
                    events.append((int(gs[i]), pos.ticket, acc, pos, float(px[i]), reason))
        for g, _, acc, pos, price, reason in sorted(events, key=lambda e: (e[0], e[1])):
            if pos.ticket in acc.positions:
                self._at_ms = g * SUBSTEP_MS
                label = "sl" if reason == _R.DEAL_REASON_SL else "tp"
                level = pos.sl if reason == _R.DEAL_REASON_SL else pos.tp
                digits = self.prices.universe[pos.symbol].spec.digits
                self._close(acc, pos, pos.volume, price, reason, f"[{label} {level:.{digits}f}]", pos.magic)
        self._at_ms = g1 * SUBSTEP_MS
        self._stop_out(accounts)

    def _stop_out(self, accounts: list[_Account]) -> None:
        """Close the worst position while margin level is under the stop-out level."""
        for acc in accounts:
            while acc.positions:
                s = self._state(acc)
                if s["margin"] <= 0 or s["margin_level"] >= self.stop_out_level:
                    break
                worst = min(
                    acc.positions.values(),
                    key=lambda p: self._profit(acc, p.symbol, p.type, p.volume, p.price_open, self._close_price(p)),
                )
                self._close(
                    acc,
                    worst,
                    worst.volume,
                    self._close_price(worst),
                    _R.DEAL_REASON_SO,
                    f"[so {s['margin_level']:.2f}%]",
                    worst.magic,
                )


def _verifier(password: str, salt: str) -> str:
    """How the simulated trade server keeps a password: ``pbkdf2$salt$hash``."""
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 20_000).hex()
    return f"pbkdf2${salt}${digest}"


def _volume_ok(volume: float, vmin: float, vmax: float, step: float) -> bool:
    if not (vmin - 1e-9 <= volume <= vmax + 1e-9):
        return False
    steps = volume / step
    return abs(steps - round(steps)) < 1e-6


def _stops_ok(type_: int, sl: float, tp: float, bid: float, ask: float, level: float) -> bool:
    """MT5 stop rules: buy SL/TP vs bid, sell SL/TP vs ask, at least ``level`` away."""
    eps = 1e-9
    if type_ == _R.ORDER_TYPE_BUY:
        return (not sl or sl <= bid - level + eps) and (not tp or tp >= bid + level - eps)
    return (not sl or sl >= ask + level - eps) and (not tp or tp <= ask - level + eps)


def _trade_request(r: dict[str, Any]) -> Any:
    def num(key: str, cast: type = float) -> Any:
        try:
            return cast(r.get(key) or 0)
        except (TypeError, ValueError):
            return cast(0)

    return _R.TradeRequest(
        num("action", int),
        num("magic", int),
        num("order", int),
        str(r.get("symbol", "")),
        num("volume"),
        num("price"),
        num("stoplimit"),
        num("sl"),
        num("tp"),
        num("deviation", int),
        num("type", int),
        num("type_filling", int),
        num("type_time", int),
        num("expiration", int),
        str(r.get("comment", "")),
        num("position", int),
        num("position_by", int),
    )


class SimGateway(ModuleGateway):
    """The ``sim`` backend: one demo account of a :class:`SimTerminal`.

    It drives the terminal through the same module surface and client logic
    as the native and bridge gateways, so all three backends behave alike by
    construction. Calls run in a worker thread (``offload``) so that a long
    history request never stalls the event loop, except the few that take
    microseconds (``INLINE``); one gateway's calls are serialized, different
    gateways share the thread-safe terminal.
    """

    def __init__(self, terminal: SimTerminal, login: int, *, password: str | None = None, offload: bool = True) -> None:
        super().__init__(ModuleClient(SimMT5(terminal), login=login, password=password, server=terminal.server))
        self.terminal = terminal
        self.login = login
        self._offload = offload
        self._serial = threading.Lock()

    # Microseconds of work: a thread hop would cost ten times the call (a tick takes ~9 µs, the hop ~110 µs).
    INLINE = frozenset({"tick", "symbol_spec", "symbols", "ping"})

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if not self._offload or getattr(fn, "__name__", "") in self.INLINE:
            return self._locked(fn, *args)
        return await asyncio.to_thread(self._locked, fn, *args)

    def _locked(self, fn: Callable[..., T], *args: Any) -> T:
        with self._serial:
            return fn(*args)
