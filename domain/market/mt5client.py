"""Gateway logic over anything shaped like the ``MetaTrader5`` module.

:class:`ModuleClient` is synchronous and backend-agnostic: it keeps the
terminal initialized (re-initializing after a dropped connection), checks
symbols before they reach the terminal, turns ``None`` + ``last_error()`` into
typed errors, and converts results with :mod:`domain.market.convert`.
:class:`ModuleGateway` is the async :class:`TradingGateway` face of it;
subclasses choose where the blocking calls run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from domain.market import convert, mt5api
from domain.market.errors import (
    AccountMismatch,
    GatewayError,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidRequest,
    InvalidSymbolName,
    UnknownSymbol,
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
from domain.market.symbols import is_valid_symbol_name, suggest

T = TypeVar("T")

MAX_BARS = 100_000
_FOREX_MODES = (mt5api.SYMBOL_CALC_MODE_FOREX, 5)  # FOREX, FOREX_NO_LEVERAGE


class ModuleClient:
    """Synchronous gateway operations over one MetaTrader5-like module."""

    NAMES_REFRESH_S = 30.0

    def __init__(
        self,
        module: Any,
        *,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        path: str | None = None,
        timeout_ms: int = 60_000,
        verify: bool = False,
    ) -> None:
        """``verify`` (a pooled live account): every account call first checks that the terminal is
        logged in to ``login`` on ``server`` (:meth:`_verified`)."""
        self._m = module
        self._path = path
        self._expect: tuple[int, str] | None = None
        if verify:
            if login is None or server is None:
                raise ValueError("verify needs the login and server to expect")
            self._expect = (int(login), server)
        self._init_kwargs: dict[str, Any] = {"timeout": int(timeout_ms)}
        for key, value in (("login", login), ("password", password), ("server", server)):
            if value is not None:
                self._init_kwargs[key] = value
        self._connected = False
        # False: close() leaves the terminal logged in (a pooled terminal other processes use too)
        self.shutdown_on_close = True
        self._names: list[str] | None = None
        self._names_at = 0.0
        self._info_cache: dict[str, Any] = {}
        self._spec_cache: dict[str, SymbolSpec] = {}

    # -- plumbing -------------------------------------------------------------
    def connect(self) -> None:
        m = self._m
        ok = m.initialize(self._path, **self._init_kwargs) if self._path else m.initialize(**self._init_kwargs)
        if not ok:
            code, message = m.last_error()
            raise convert.error_from_last_error(code, message, "initialize")
        self._connected = True

    def close(self) -> None:
        if self._connected:
            self._connected = False
            if not self.shutdown_on_close:
                return
            with contextlib.suppress(GatewayError):
                self._m.shutdown()

    def _invoke(self, name: str, *args: Any, empty: Any = None, **kwargs: Any) -> Any:
        """Call a module function; ``empty`` is returned for None + "Success"."""
        if not self._connected:
            self.connect()
        try:
            result = getattr(self._m, name)(*args, **kwargs)
            if result is not None:
                return result
            code, message = self._m.last_error()
        except GatewayUnavailable:
            self._connected = False
            raise
        if code == mt5api.RES_S_OK and empty is not None:
            return empty
        err = convert.error_from_last_error(code, message, name)
        if isinstance(err, GatewayUnavailable):
            self._connected = False  # the next call re-initializes
        raise err

    @property
    def expected(self) -> tuple[int, str] | None:
        return self._expect

    def _verified(self) -> Any:
        """account_info(), after checking it is the expected account (when one is expected).

        A terminal on another account refuses the call (AccountMismatch: nothing is sent) and
        keeps refusing: logging it back in is the owner's decision (:meth:`relogin`), since a
        stale gateway must never take a terminal back from the account now leasing it.
        """
        info = self._invoke("account_info")
        if self._expect is None or _is(info, self._expect):
            return info
        raise AccountMismatch(self._expect, (int(info.login), str(info.server)), relogged=False)

    def relogin(self) -> bool:
        """Log the terminal in to the expected account again; True when it now is."""
        if self._expect is None:
            return True
        self._connected = False
        try:
            self.connect()
            return _is(self._invoke("account_info"), self._expect)
        except GatewayError:
            return False

    def _universe(self, refresh: bool = False) -> list[str]:
        stale = time.monotonic() - self._names_at > self.NAMES_REFRESH_S
        if self._names is None or (refresh and stale):
            self._names = [str(s.name) for s in self._invoke("symbols_get", empty=())]
            self._names_at = time.monotonic()
        return self._names

    def _check_symbol(self, name: str) -> None:
        if not is_valid_symbol_name(name):
            try:
                known = self._universe()
            except GatewayError:
                known = []
            raise InvalidSymbolName(str(name)[:64], suggest(str(name), known))
        if name in self._universe() or name in self._universe(refresh=True):
            return
        raise UnknownSymbol(name, suggest(name, self._universe()))

    def _info(self, name: str) -> Any:
        """symbol_info, cached; selects the symbol into Market Watch if needed."""
        info = self._info_cache.get(name)
        if info is None:
            self._check_symbol(name)
            info = self._invoke("symbol_info", name)
            if not info.select:
                self._invoke("symbol_select", name, True)
            self._info_cache[name] = info
        return info

    def _tick_raw(self, name: str) -> Any:
        self._info(name)
        return self._invoke("symbol_info_tick", name)

    def _rate(self, src: str, dst: str) -> float:
        """Mid rate converting ``src`` currency into ``dst``."""
        if src == dst:
            return 1.0
        for name in self._universe():
            pair = name[:6]
            if pair in (src + dst, dst + src) and len(name) <= 8:
                t = self._invoke("symbol_info_tick", name)
                mid = (float(t.bid) + float(t.ask)) / 2
                return mid if pair == src + dst else 1.0 / mid
        if "USD" not in (src, dst):
            return self._rate(src, "USD") * self._rate("USD", dst)
        raise GatewayError(f"no symbol converts {src} into {dst}")

    # -- market data ------------------------------------------------------------
    def symbols(self) -> list[str]:
        return list(self._universe(refresh=True))

    def symbol_spec(self, name: str) -> SymbolSpec:
        spec = self._spec_cache.get(name)
        if spec is None:
            info = self._info(name)
            spec = convert.symbol_spec(info, convert.category_of(info), self._margin_rate(info))
            self._spec_cache[name] = spec
        return spec

    def _margin_rate(self, info: Any) -> float:
        """Margin rate such that margin = lots·contract·price·rate/leverage."""
        try:
            acc = self._invoke("account_info")
            ask = float(self._tick_raw(info.name).ask)
            margin = self._invoke("order_calc_margin", mt5api.ORDER_TYPE_BUY, info.name, 1.0, ask)
            conv = self._rate(info.currency_margin, acc.currency)
        except GatewayUnavailable:
            raise
        except GatewayError:
            return 1.0
        price = 1.0 if int(info.trade_calc_mode) in _FOREX_MODES else ask
        notional = float(info.trade_contract_size) * price * conv
        if notional <= 0:
            return 1.0
        # 4 significant digits absorb the terminal's cent rounding of the margin
        return float(f"{float(margin) * int(acc.leverage) / notional:.4g}")

    def tick(self, symbol: str) -> Tick:
        return convert.tick(symbol, self._tick_raw(symbol))

    def bars(self, symbol: str, tf: Timeframe, count: int) -> list[Bar]:
        if not 1 <= int(count) <= MAX_BARS:
            raise InvalidRequest(f"count must be within 1..{MAX_BARS}")
        self._info(symbol)
        return convert.bars(
            self._invoke("copy_rates_from_pos", symbol, convert.TIMEFRAMES[Timeframe(tf)], 0, int(count))
        )

    def bars_range(self, symbol: str, tf: Timeframe, start: datetime, end: datetime) -> list[Bar]:
        t0, t1 = convert.epoch_seconds(start), convert.epoch_seconds(end)
        if t1 < t0:
            raise InvalidRequest("end is before start")
        self._info(symbol)
        return convert.bars(self._invoke("copy_rates_range", symbol, convert.TIMEFRAMES[Timeframe(tf)], t0, t1))

    # -- account ------------------------------------------------------------------
    def account(self) -> Account:
        return convert.account(self._verified())

    def positions(self, symbol: str | None = None) -> list[Position]:
        self._verified()
        if symbol is None:
            raw = self._invoke("positions_get", empty=())
        else:
            self._check_symbol(symbol)
            raw = self._invoke("positions_get", symbol=symbol, empty=())
        return [convert.position(p) for p in raw]

    def history_deals(self, start: datetime, end: datetime, symbol: str | None = None) -> list[Deal]:
        if symbol is not None:
            self._check_symbol(symbol)
        self._verified()
        raw = self._invoke("history_deals_get", convert.epoch_seconds(start), convert.epoch_seconds(end), empty=())
        deals = [d for d in (convert.deal(r) for r in raw) if d is not None]
        if symbol is not None:
            deals = [d for d in deals if d.symbol == symbol]
        return sorted(deals, key=lambda d: (d.time, d.ticket))

    # -- trading ------------------------------------------------------------------
    def _prepare(self, req: OrderRequest) -> dict[str, Any] | tuple[Retcode, str]:
        """The MT5 request dict, or a (retcode, comment) rejection found locally."""
        info = self._info(req.symbol)
        filling = convert.filling_type(int(info.filling_mode))
        if req.action in (OrderAction.CLOSE, OrderAction.SLTP):
            if not req.position:
                return Retcode.INVALID, "position ticket required"
            found = self._invoke("positions_get", ticket=int(req.position), empty=())
            if not found:
                return Retcode.POSITION_CLOSED, "Position not found"
            pos = found[0]
            if pos.symbol != req.symbol:
                return Retcode.INVALID, "Position belongs to another symbol"
            if req.action is OrderAction.SLTP:
                return convert.request_dict(req, price=0.0, filling=filling)
            t = self._invoke("symbol_info_tick", req.symbol)
            market = float(t.bid) if int(pos.type) == mt5api.POSITION_TYPE_BUY else float(t.ask)
            return convert.request_dict(
                req,
                price=req.price or market,
                filling=filling,
                position_type=int(pos.type),
                position_volume=float(pos.volume),
            )
        if req.side is None:
            return Retcode.INVALID, "side required"
        if req.volume <= 0:
            return Retcode.INVALID_VOLUME, "Invalid volume"
        t = self._invoke("symbol_info_tick", req.symbol)
        market = float(t.ask) if req.side is Side.BUY else float(t.bid)
        return convert.request_dict(req, price=req.price or market, filling=filling)

    def order_check(self, req: OrderRequest) -> OrderCheck:
        self._verified()
        prepared = self._prepare(req)
        if isinstance(prepared, tuple):
            acc = self._invoke("account_info")
            return OrderCheck(prepared[0], 0.0, float(acc.margin_free), float(acc.equity), prepared[1])
        return convert.order_check(self._invoke("order_check", prepared))

    def order_send(self, req: OrderRequest) -> OrderResult:
        prepared = self._prepare(req)
        if isinstance(prepared, tuple):
            return OrderResult(prepared[0], 0, 0, 0.0, 0.0, prepared[1])
        self._verified()  # the last word before the order leaves: this terminal is on this account
        return convert.order_result(self._invoke("order_send", prepared))

    def ping(self) -> float:
        started = time.perf_counter()
        self._invoke("terminal_info")
        return (time.perf_counter() - started) * 1000.0


def _is(info: Any, expect: tuple[int, str]) -> bool:
    return int(info.login) == expect[0] and str(info.server).casefold() == expect[1].casefold()


class ModuleGateway:
    """Async :class:`TradingGateway` over a :class:`ModuleClient`."""

    def __init__(self, client: ModuleClient) -> None:
        self._client = client

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return fn(*args)

    async def connect(self) -> None:
        await self._run(self._client.connect)

    async def close(self) -> None:
        await self._run(self._client.close)

    async def symbols(self) -> list[str]:
        return await self._run(self._client.symbols)

    async def symbol_spec(self, name: str) -> SymbolSpec:
        return await self._run(self._client.symbol_spec, name)

    async def tick(self, symbol: str) -> Tick:
        return await self._run(self._client.tick, symbol)

    async def bars(self, symbol: str, tf: Timeframe, count: int) -> list[Bar]:
        return await self._run(self._client.bars, symbol, tf, count)

    async def bars_range(self, symbol: str, tf: Timeframe, start: datetime, end: datetime) -> list[Bar]:
        return await self._run(self._client.bars_range, symbol, tf, start, end)

    async def account(self) -> Account:
        return await self._run(self._client.account)

    async def positions(self, symbol: str | None = None) -> list[Position]:
        return await self._run(self._client.positions, symbol)

    async def history_deals(self, start: datetime, end: datetime, symbol: str | None = None) -> list[Deal]:
        return await self._run(self._client.history_deals, start, end, symbol)

    async def order_check(self, request: OrderRequest) -> OrderCheck:
        return await self._run(self._client.order_check, request)

    async def order_send(self, request: OrderRequest) -> OrderResult:
        return await self._run(self._client.order_send, request)

    async def ping(self) -> float:
        return await self._run(self._client.ping)


class ThreadedModuleGateway(ModuleGateway):
    """Runs every module call on ONE dedicated thread, with a call timeout.

    The MetaTrader5 module is blocking and holds a single global connection,
    so calls are serialized on a single-worker executor; the event loop never
    blocks. A call that outlives ``timeout`` raises GatewayTimeout (the
    thread finishes it in the background; later calls queue behind it).
    """

    def __init__(self, client: ModuleClient, *, timeout: float, thread_name: str) -> None:
        super().__init__(client)
        self._timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._closed = False

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise GatewayUnavailable("gateway is closed")
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, functools.partial(fn, *args))
        try:
            return await asyncio.wait_for(future, self._timeout)
        except TimeoutError:
            raise GatewayTimeout(f"{getattr(fn, '__name__', 'call')} took longer than {self._timeout}s") from None

    def _close_sync(self) -> None:
        self._client.close()

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self._run(self._close_sync)
        except GatewayError:
            pass
        finally:
            self._closed = True
            self._executor.shutdown(wait=False, cancel_futures=True)
