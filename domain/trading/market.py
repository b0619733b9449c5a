"""The market hub: the process's simulated terminal, the market-data gateway,
per-account gateways, quotes, charts, and the feed's health numbers.

Demo accounts are accounts of the simulated terminal whose state lives in the
database (:mod:`domain.trading.demo`), so every process trades the same ones.
Live accounts get a terminal of their own from the pool
(:mod:`domain.trading.pool`: ``MT5_RPYC_POOL``, ``MT5_TERMINAL_PATHS``), leased
in the database, and gateways keyed by (login, server); on the ``sim`` backend a
"live" login is a real-mode account of the simulated server that must
authenticate with its password (what the tests and console use).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from domain.admin import PoolFigures
from domain.market import make_gateway
from domain.market.clock import Clock
from domain.market.errors import (
    AccountMismatch,
    GatewayAuthError,
    GatewayError,
    GatewayUnavailable,
    NoQuotes,
    UnknownSymbol,
)
from domain.market.gateway import TradingGateway
from domain.market.models import Account, Bar, SymbolSpec, Tick, Timeframe
from domain.market.sim import SimGateway, SimTerminal
from domain.market.symbols import is_valid_symbol_name, suggest
from domain.trading import chart
from domain.trading.demo import DemoAccounts, DemoStore, SharedSimGateway
from domain.trading.models import (
    DemoLoginRefused,
    LinkFailed,
    MarketUnavailable,
    NoQuote,
    SymbolNotFound,
    TerminalMismatch,
)
from domain.trading.pool import GuardedGateway, TerminalPool

log = logging.getLogger(__name__)

DATA_LOGIN = 1  # the market-data account: never stored, never a user's
CHART_BARS = 80
CHART_CACHE = 64


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    description: str
    digits: int
    point: float
    bid: float
    ask: float
    time_msc: int
    day_open: float | None
    day_high: float | None
    day_low: float | None
    simulated: bool = False  # from the simulated terminal (MarketHub.simulated): not a market price

    @property
    def spread_points(self) -> int:
        return round((self.ask - self.bid) / self.point) if self.point else 0

    @property
    def change(self) -> float | None:
        return None if self.day_open is None else self.bid - self.day_open

    @property
    def change_pct(self) -> float | None:
        if self.day_open in (None, 0):
            return None
        return (self.bid - self.day_open) / self.day_open * 100  # type: ignore[operator]


@dataclass(frozen=True, slots=True)
class Chart:
    symbol: str
    timeframe: Timeframe
    png: bytes
    last_bar_time: int
    cached: bool
    simulated: bool = False  # bars of the simulated terminal; the image then carries the mark it was given


@asynccontextmanager
async def market_errors(symbol: str | None = None) -> AsyncIterator[None]:
    """Gateway failures as domain errors the bot can explain."""
    try:
        yield
    except UnknownSymbol as exc:
        raise SymbolNotFound(str(exc), symbol=exc.symbol, suggestions=", ".join(exc.suggestions)) from exc
    except NoQuotes as exc:
        raise NoQuote(str(exc), symbol=symbol or "") from exc
    except AccountMismatch as exc:
        raise TerminalMismatch("terminal on another account") from exc
    except GatewayUnavailable as exc:
        raise MarketUnavailable(exc.code) from exc


class MarketHub:
    def __init__(
        self,
        *,
        backend: str = "sim",
        host: str = "127.0.0.1",
        port: int = 18812,
        seed: int = 0,
        clock: Clock | None = None,
        timeout: float = 10.0,
        pool: TerminalPool | None = None,
        module: Any = None,
    ) -> None:
        """``pool``: the live accounts' terminals (None on ``sim``: every account is its own there);
        ``module``: the MetaTrader5 module of the ``native`` market-data gateway (tests inject one)."""
        self.backend = backend
        self._host, self._port, self._timeout = host, port, timeout
        self.terminal = SimTerminal(seed, clock=clock)
        self.pool = pool
        self._module = module
        self._data: TradingGateway | None = None
        # ("demo", login) and ("live", login, case-folded server)
        self._gateways: dict[tuple[Any, ...], TradingGateway] = {}
        self._specs: dict[str, SymbolSpec] = {}
        self._charts: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._names: list[str] | None = None
        self.watched: dict[str, float] = {}  # symbol -> monotonic time it was last asked for
        self._watch_sink: Callable[[list[str]], None] | None = None
        self.connected = False
        self.ticks_total = 0
        self._rate: tuple[float, int] = (time.monotonic(), 0)
        self.tick_rate = 0.0
        self.demo: DemoAccounts | None = None

    @property
    def simulated(self) -> bool:
        """Whether market data (quotes, bars, charts, what alerts watch) comes from the simulated terminal:
        ``MT5_BACKEND=sim``. A ``native`` or ``rpyc`` terminal is a real one. Demo accounts trade on the
        simulated terminal whatever the backend (``LinkedAccount.simulated``)."""
        return self.backend == "sim"

    def use_clock(self, clock: Clock) -> None:
        """Swap the terminal's clock (tests, backtests) before anything trades."""
        self.terminal.clock = clock

    # ---- lifecycle ----
    async def start(self, store: DemoStore) -> None:
        """Keep demo accounts in ``store`` (a SqlDemoStore)."""
        self.demo = DemoAccounts(self.terminal, store)
        self.demo.on_evict.append(lambda login: self._gateways.pop(("demo", login), None))
        await self.demo.start()
        if self.pool is not None:
            await self.pool.start()

    def data_gateway(self) -> TradingGateway:
        if self._data is None:
            if self.backend == "sim":  # a process-local account that only reads prices
                self.terminal.open_demo_account(1.0, name="Market data", login=DATA_LOGIN)
                self._data = SimGateway(self.terminal, DATA_LOGIN)
            else:
                self._data = make_gateway(
                    self.backend, host=self._host, port=self._port, timeout=self._timeout, module=self._module,
                    secret=self.pool.secret if self.pool is not None else None,
                )  # fmt: skip
                client = getattr(self._data, "_client", None)
                if client is not None:  # its terminal may serve a leased account: never log it out
                    client.shutdown_on_close = False
        return self._data

    async def close(self) -> None:
        for gw in [self._data, *self._gateways.values()]:
            if gw is not None:
                try:
                    await gw.close()
                except GatewayError:
                    log.debug("gateway close failed", exc_info=True)
        self._gateways.clear()
        if self.pool is not None:
            await self.pool.close()

    # ---- accounts ----
    async def open_demo(self, balance: float = 10_000.0, currency: str = "USD", leverage: int = 100) -> int:
        if self.demo is None:
            return self.terminal.open_demo_account(balance, currency, leverage)
        return await self.demo.open(balance, currency, leverage)

    def _sim_gateway(self, login: int, password: str | None = None) -> TradingGateway:
        if self.demo is None:
            return SimGateway(self.terminal, login, password=password)
        return SharedSimGateway(self.demo, login, password=password)

    def demo_gateway(self, login: int) -> TradingGateway:
        key = ("demo", login)
        gw = self._gateways.get(key)
        if gw is None:
            gw = self._gateways[key] = self._sim_gateway(login)
        return gw

    async def live_gateway(self, user_id: int, login: int, password: str, server: str) -> TradingGateway:
        """The gateway of a linked live account (its terminal leased again if it lost it)."""
        key = ("live", login, server.casefold())
        gw = self._gateways.get(key)
        if isinstance(gw, GuardedGateway) and self.pool is not None:
            held = await self.pool.store.find(login, server)  # another process may have moved the account
            if held is None or held.endpoint != gw.endpoint.key or held.user_id not in (None, user_id):
                self._gateways.pop(key, None)
                await self._close(gw)
                gw = None
        if gw is None:
            gw = await self.connect_live(user_id, login, password, server)
            self._gateways[key] = gw
        return gw

    async def connect_live(self, user_id: int, login: int, password: str, server: str) -> TradingGateway:
        """A connected gateway for a linked real account, on a terminal of its own."""
        return (await self._connect_live(user_id, login, password, server, linking=False))[0]

    async def link_gateway(self, user_id: int, login: int, password: str, server: str) -> tuple[TradingGateway, Account]:
        """Connect an account being linked: a fresh lease is given back on any failure."""
        return await self._connect_live(user_id, login, password, server, linking=True)

    async def _connect_live(
        self, user_id: int, login: int, password: str, server: str, *, linking: bool
    ) -> tuple[TradingGateway, Account]:
        """A connected gateway for a real account, on a terminal of its own, and its account info.

        LinkFailed when the login is refused; with ``linking``, also DemoLoginRefused when the
        terminal reports a demo (or contest) account, and a terminal leased for this link is
        given back on any failure. NoFreeTerminal / AccountTaken come from the pool."""
        lease = None
        if self.pool is None:
            gw: TradingGateway = self._sim_gateway(login, password)
        else:
            endpoint, lease = await self.pool.lease(user_id, login, server)
            try:
                inner = await self.pool.gateway(endpoint, login, password, server)
            except BaseException:
                if linking and lease.fresh:
                    await self.pool.release(login, server, user_id)
                raise
            gw = GuardedGateway(inner, endpoint, lease, self._mismatch)
        try:
            try:
                async with market_errors():
                    await gw.connect()
                    info = await gw.account()
            except GatewayAuthError as exc:
                raise LinkFailed("login refused") from exc
            if info.login != login or info.server.casefold() != server.strip().casefold():
                raise LinkFailed("the terminal reports another account")
            if linking and info.is_demo:
                raise DemoLoginRefused("the terminal reports a demo account")
        except BaseException:
            await self._close(gw)
            if linking and lease is not None and lease.fresh:
                await self.pool.release(login, server, user_id)  # type: ignore[union-attr]
            raise
        return gw, info

    async def _mismatch(self, gw: GuardedGateway, exc: AccountMismatch) -> None:
        """A pooled terminal was on another account (nothing was sent).

        If the account no longer leases that terminal, this gateway is stale (unlinked or moved
        meanwhile): it is dropped and never logs the terminal back. Otherwise the terminal is
        logged back in to its lessee, or, failing that, taken out of the pool; audited either way."""
        assert self.pool is not None
        key = ("live", gw.lease.login, gw.lease.server)
        held = await self.pool.store.find(gw.lease.login, gw.lease.server)
        if held is None or held.endpoint != gw.endpoint.key:
            log.info("dropping a stale gateway of %s (its terminal serves another account now)", gw.endpoint.key)
            self._gateways.pop(key, None)
            await self._close(gw)
            return
        exc.relogged = await gw.relogin()
        await self.pool.on_mismatch(gw.endpoint, gw.lease.user_id, exc)
        if not exc.relogged:  # its account leases another terminal at its next call
            self._gateways.pop(key, None)
            await self._close(gw)

    async def adopt_live(self, login: int, server: str, gw: TradingGateway) -> None:
        """Keep the gateway a link just connected (replacing any older one of that account)."""
        key = ("live", login, server.casefold())
        old = self._gateways.pop(key, None)
        if old is not None and old is not gw:
            await self._close(old)
        self._gateways[key] = gw

    async def forget_live(self, login: int, server: str, *, release_for: int | None = None) -> None:
        """Drop the account's gateway; ``release_for`` (the unlinking user): free its terminal too,
        logged out, for the next account."""
        gw = self._gateways.pop(("live", login, server.casefold()), None)
        if release_for is None or self.pool is None:
            if gw is not None:
                await self._close(gw)
            return
        if isinstance(gw, GuardedGateway):
            gw.inner._client.shutdown_on_close = True  # type: ignore[attr-defined]
        if gw is not None:
            await self._close(gw)
        await self.pool.release(login, server, release_for)

    @staticmethod
    async def _close(gw: TradingGateway) -> None:
        try:
            await gw.close()
        except GatewayError:
            log.debug("gateway close failed", exc_info=True)

    # ---- symbols and quotes ----
    async def symbol_names(self) -> list[str]:
        if self._names is None:
            async with market_errors():
                self._names = await self.data_gateway().symbols()
        return self._names

    async def resolve(self, raw: str) -> SymbolSpec:
        """The spec of a symbol typed by a user ("eurusd" works); SymbolNotFound with suggestions."""
        name = raw.strip().upper()
        if not is_valid_symbol_name(name):
            names = await self.symbol_names()
            raise SymbolNotFound("bad symbol", symbol=raw[:32], suggestions=", ".join(suggest(raw[:64], names)))
        spec = self._specs.get(name)
        if spec is None:
            async with market_errors(name):
                spec = await self.data_gateway().symbol_spec(name)
            self._specs[name] = spec
        return spec

    async def digits(self, symbol: str, default: int = 5) -> int:
        """Display digits of a symbol; ``default`` when the data feed does not know it or is down."""
        try:
            return (await self.resolve(symbol)).digits
        except (SymbolNotFound, MarketUnavailable, NoQuote):
            return default

    def share_watch(self, sink: Callable[[list[str]], None]) -> None:
        """Also report each watched symbol to ``sink`` (synchronous, must not block): with several
        processes, the deployment-wide watch set the worker's feed polls (workers/partition.py)."""
        self._watch_sink = sink

    def watch(self, symbols: Iterable[str]) -> None:
        now = time.monotonic()
        names = list(symbols)
        for s in names:
            self.watched[s] = now
        if self._watch_sink is not None:
            self._watch_sink(names)

    async def tick(self, symbol: str) -> Tick:
        async with market_errors(symbol):
            return await self.data_gateway().tick(symbol)

    async def quote(self, raw: str) -> Quote:
        spec = await self.resolve(raw)
        self.watch([spec.name])
        tick = await self.tick(spec.name)
        async with market_errors(spec.name):
            day = await self.data_gateway().bars(spec.name, Timeframe.D1, 1)
        d = day[-1] if day else None
        return Quote(
            spec.name, spec.description, spec.digits, spec.point, tick.bid, tick.ask, tick.time_msc,
            d.open if d else None, d.high if d else None, d.low if d else None, self.simulated,
        )  # fmt: skip

    async def bars(self, symbol: str, tf: Timeframe, count: int) -> list[Bar]:
        async with market_errors(symbol):
            return await self.data_gateway().bars(symbol, tf, count)

    async def chart(self, raw: str, tf: Timeframe, levels: Iterable[float] = (), mark: str | None = None) -> Chart:
        """A candlestick PNG; ``mark`` (the localized "simulated" label) is drawn into it when the bars come
        from the simulated terminal, never otherwise."""
        spec = await self.resolve(raw)
        self.watch([spec.name])
        bars = await self.bars(spec.name, tf, CHART_BARS)
        if not bars:
            raise NoQuote("no bars", symbol=spec.name)
        lv = tuple(sorted(set(levels)))
        drawn = mark if self.simulated else None
        key = (spec.name, tf, bars[-1].time, lv, drawn)
        png = self._charts.get(key)
        if png is not None:
            self._charts.move_to_end(key)
            return Chart(spec.name, tf, png, bars[-1].time, True, self.simulated)
        title = f"{spec.name} · {tf.value}"
        png = await asyncio.to_thread(chart.render, title, bars, lv, spec.digits, drawn)
        self._charts[key] = png
        while len(self._charts) > CHART_CACHE:
            self._charts.popitem(last=False)
        return Chart(spec.name, tf, png, bars[-1].time, False, self.simulated)

    # ---- health ----
    async def pool_figures(self) -> PoolFigures | None:
        """The terminal pool's figures (None on the sim backend: no terminals to lease)."""
        return None if self.pool is None else await self.pool.figures()

    def count_ticks(self, n: int) -> None:
        self.ticks_total += n
        start, base = self._rate
        now = time.monotonic()
        if now - start >= 5.0:
            self.tick_rate = (self.ticks_total - base) / (now - start)
            self._rate = (now, self.ticks_total)

    async def probe(self) -> str:
        """The /status gateway line: backend, ping and the feed's tick rate; raises when down."""
        gw = self.data_gateway()
        try:
            ping = await gw.ping()
        except GatewayError as exc:
            raise RuntimeError(exc.code) from exc
        return f"{self.backend} · ping {ping:.1f} ms · {self.tick_rate:.1f} ticks/s"
