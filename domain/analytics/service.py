"""AnalyticsService: one user's performance report for a period, and the equity snapshots behind it.

``report`` reads the active account through the same :class:`TradingService`
the trading commands use (demo accounts live on the simulated terminal, live
ones on the user's MT5 gateway), takes the period's deals from the gateway and
the recorded equity history from ``uow.equity``, fills the time before the
first snapshot with the balance reconstructed from the deals, and computes
every metric in :mod:`domain.analytics.metrics`.

Caching (per process, bounded, never stale):

* equity history per account as numpy arrays, validated on every report by a
  cheap change token (row count + newest ``ts``, one index-only query); new
  rows are appended incrementally, anything else (a backfill) reloads;
* deal history per account: after the first full read only the deals since
  the newest known one (with an overlap) are asked from the gateway; deals are
  immutable, the whole history is re-read every ``DEALS_FULL_EVERY`` anyway;
* per (account, period start) the deal statistics and the equity curve without
  its live end, keyed by (deal version, equity token, balance); each report then
  only appends the current equity and recomputes the curve metrics (numpy).
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import numpy as np

from domain.analytics import metrics as m
from domain.analytics.metrics import DealColumns, DealStats, EquityPoint, Metrics, Period, SymbolStats
from domain.db.analytics import EquitySnapshot
from domain.market.gateway import TradingGateway
from domain.market.models import Account, Position, Timeframe
from domain.tiers import Tier
from domain.trading.market import MarketHub, market_errors
from domain.trading.models import AccountKind, LinkedAccount
from domain.trading.service import TradingService

log = logging.getLogger(__name__)

MIN_PEERS = 20  # the platform median is shown only when at least this many users of the tier have data
PEERS_TTL = 300.0  # seconds the tier median is cached
BENCH_TTL = 300.0  # seconds a buy-and-hold figure is cached (same symbols, same period start)
BENCH_SYMBOLS = 5  # buy-and-hold over at most this many of the most traded symbols
HISTORY_START = datetime(2000, 1, 1, tzinfo=UTC)
HISTORIES = 256  # accounts whose equity history stays in memory (least recently used dropped)
BOOKS = 256  # accounts whose deal history stays in memory
BASES = 512  # (account, period start) pairs whose deal statistics and curve stay in memory
DEALS_OVERLAP = 3600  # seconds re-asked before the newest known deal (dedup by ticket)
DEALS_FULL_EVERY = 900.0  # seconds after which the whole deal history is read again

_VERSIONS = itertools.count(1)  # deal-book versions, unique in the process (an evicted book never reuses one)

K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A small bounded least-recently-used map."""

    __slots__ = ("_data", "size")

    def __init__(self, size: int) -> None:
        self._data: OrderedDict[K, V] = OrderedDict()
        self.size = size

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True, slots=True)
class _History:
    """One account's recorded equity, oldest first, and the token it was read at."""

    stamp: tuple[int, int]  # (rows, newest ts)
    times: np.ndarray
    values: np.ndarray


@dataclass(frozen=True, slots=True)
class _Book:
    """One account's trade deals (those with a symbol) as columns, sorted by (time, ticket)."""

    deals: DealColumns
    tickets: frozenset[int]
    version: int  # changes whenever the deals do
    loaded: float  # monotonic time of the last full read

    @classmethod
    def of(cls, deals: DealColumns, version: int, loaded: float) -> _Book:
        return cls(deals, frozenset(deals.ticket.tolist()), version, loaded)

    @property
    def newest(self) -> int | None:
        return int(self.deals.time[-1]) if len(self.deals) else None


@dataclass(frozen=True, slots=True)
class _Base:
    """A period's deal statistics and its equity curve up to the last recorded point (no live end)."""

    token: tuple[Any, ...]
    stats: DealStats
    times: np.ndarray
    values: np.ndarray


@dataclass(frozen=True, slots=True)
class PerformanceReport:
    user_id: int
    period: Period
    account_kind: AccountKind
    login: int
    currency: str
    start: int | None  # epoch seconds the period starts; None for ALL
    end: int  # epoch seconds: now
    metrics: Metrics
    times: np.ndarray = field(compare=False, repr=False)  # the equity curve's epoch seconds, oldest first
    values: np.ndarray = field(compare=False, repr=False)  # its equity, ending with the current equity
    by_symbol: list[SymbolStats]  # best net first
    balance: float
    equity_now: float
    floating: float  # open positions' P/L now
    open_positions: int
    buy_and_hold_pct: float | None  # equal-weight buy-and-hold of the traded symbols over the period
    platform_median_pct: float | None  # median return of the same tier; None below MIN_PEERS users
    platform_users: int  # users behind the median (0 when hidden)
    positions: tuple[Position, ...] = ()  # the open positions the report was made with

    @property
    def equity(self) -> list[EquityPoint]:
        """``(epoch_s, equity)`` oldest first, ending with the current equity."""
        return list(zip(self.times.tolist(), self.values.tolist(), strict=True))

    @property
    def drawdown(self) -> list[EquityPoint]:
        """``(epoch_s, percent below the running peak, <= 0)``."""
        return list(zip(self.times.tolist(), m.drawdown_pct(self.values).tolist(), strict=True))

    @property
    def empty(self) -> bool:
        """No closed trade in the period and no open position: nothing to analyse."""
        return self.metrics.trades == 0 and self.open_positions == 0


@dataclass(frozen=True, slots=True)
class Portfolio:
    """The dashboard's portfolio panel: the account now and today's P/L."""

    account_kind: AccountKind
    login: int
    currency: str
    balance: float
    equity: float
    margin_free: float
    day_realized: float
    day_floating: float
    positions: list[Position]
    digits: dict[str, int]


class AnalyticsService:
    def __init__(self, trading: TradingService, hub: MarketHub, *, min_peers: int = MIN_PEERS) -> None:
        self.trading = trading
        self.hub = hub
        self.min_peers = min_peers
        self._peers: dict[tuple[str, Period], tuple[float, float | None, int]] = {}
        self._bh: dict[tuple[tuple[str, ...], int, Timeframe], tuple[float, float | None]] = {}
        self._histories: _Lru[tuple[int, int], _History] = _Lru(HISTORIES)
        self._books: _Lru[tuple[str, int, str], _Book] = _Lru(BOOKS)
        self._bases: _Lru[tuple[Any, ...], _Base] = _Lru(BASES)

    def now(self) -> datetime:
        """The terminal's clock on the simulated backend, else the wall clock."""
        if self.hub.backend == "sim":
            return datetime.fromtimestamp(self.hub.terminal.now_ms() / 1000, UTC)
        return datetime.now(UTC)

    def forget(self) -> None:
        """Drop every cached history and statistic (they are rebuilt on the next report)."""
        self._histories.clear()
        self._books.clear()
        self._bases.clear()

    async def report(self, uow: Any, user_id: int, tier: Tier, period: Period, *, tz: str = "UTC") -> PerformanceReport:
        account, gw = await self.trading.active(uow, user_id, tier)
        now = self.now()
        end = int(now.timestamp())
        start_dt = period.start(now, tz)
        since = int(start_dt.timestamp()) if start_dt is not None else None
        async with market_errors():
            info = await gw.account()
            positions = await gw.positions()
            book = await self._book(account, gw, now)
        history = await self._history(uow, user_id, account.login)
        key = (user_id, account.kind.value, account.login, since)
        token = (book.version, history.stamp, info.balance)
        base = self._bases.get(key)
        if base is None or base.token != token:
            base = self._base(book, history, since, info.balance, token)
            self._bases.put(key, base)
        cut = int(np.searchsorted(base.times, end, "left"))  # the live end replaces anything at or after now
        times = np.append(base.times[:cut], end)
        values = np.append(base.values[:cut], round(info.equity, 2))
        metrics = m.combine(base.stats, times, values)
        bh = await self._buy_and_hold(base.stats, since, now)
        median, peers = await self._platform(uow, tier, period, now)
        return PerformanceReport(
            user_id=user_id,
            period=period,
            account_kind=account.kind,
            login=account.login,
            currency=info.currency,
            start=since,
            end=end,
            metrics=metrics,
            times=times,
            values=values,
            by_symbol=base.stats.symbols,
            balance=round(info.balance, 2),
            equity_now=round(info.equity, 2),
            floating=round(sum(p.profit for p in positions), 2),
            open_positions=len(positions),
            buy_and_hold_pct=bh,
            platform_median_pct=median,
            platform_users=peers,
            positions=tuple(positions),
        )

    @staticmethod
    def _base(book: _Book, history: _History, since: int | None, balance: float, token: tuple[Any, ...]) -> _Base:
        deals = book.deals.since(since)
        stats = m.deal_stats(deals, BENCH_SYMBOLS)
        t, v = m.balance_curve_of(deals.time, deals.result, balance)
        h0 = 0 if since is None else int(np.searchsorted(history.times, since, "left"))
        rt, rv = history.times[h0:], history.values[h0:]
        if len(rt):  # recorded snapshots win; the reconstruction fills the time before the first one
            keep = int(np.searchsorted(t, rt[0], "left"))
            t, v = np.concatenate([t[:keep], rt]), np.concatenate([v[:keep], rv])
        if since is not None and (not len(t) or t[0] > since):  # the period opens at the last equity known before it
            anchor = float(history.values[h0 - 1]) if h0 > 0 else (float(v[0]) if len(v) else balance)
            t, v = np.concatenate([[since], t]).astype(np.int64), np.concatenate([[anchor], v])
        return _Base(token, stats, t, v)

    async def _book(self, account: LinkedAccount, gw: TradingGateway, now: datetime) -> _Book:
        """The account's deals: read whole once, then only what is new since the newest known deal."""
        key = (account.kind.value, account.login, account.server)
        book = self._books.get(key)
        until = now + timedelta(seconds=1)
        clock = time.monotonic()
        newest = book.newest if book is not None else None
        if book is None or clock - book.loaded > DEALS_FULL_EVERY or newest is None:
            deals = await gw.history_deals(HISTORY_START, until)
            fresh = _Book.of(DealColumns.of(d for d in deals if d.symbol), next(_VERSIONS), clock)
            if book is not None and fresh.tickets == book.tickets:  # nothing changed: the statistics stay valid
                fresh = _Book(book.deals, book.tickets, book.version, clock)
            self._books.put(key, fresh)
            return fresh
        recent = await gw.history_deals(datetime.fromtimestamp(newest - DEALS_OVERLAP, UTC), until)
        new = [d for d in recent if d.symbol and d.ticket not in book.tickets]
        if new:
            book = _Book.of(book.deals.merged(DealColumns.of(new)), next(_VERSIONS), book.loaded)
            self._books.put(key, book)
        return book

    async def _history(self, uow: Any, user_id: int, login: int) -> _History:
        """The account's recorded equity, checked against the table's change token on every call."""
        key = (user_id, login)
        stamp = await uow.equity.stamp(user_id, login)
        found = self._histories.get(key)
        if found is not None and found.stamp == stamp:
            return found
        if found is not None and stamp[0] > found.stamp[0] and stamp[1] > found.stamp[1]:
            times, values = await uow.equity.series_arrays(user_id, login, after=found.stamp[1])
            if found.stamp[0] + len(times) == stamp[0]:  # only newer rows arrived: append them
                grown = _History(stamp, np.concatenate([found.times, times]), np.concatenate([found.values, values]))
                self._histories.put(key, grown)
                return grown
        times, values = await uow.equity.series_arrays(user_id, login)
        fresh = _History((len(times), int(times[-1]) if len(times) else 0), times, values)
        self._histories.put(key, fresh)
        return fresh

    async def portfolio(self, uow: Any, user_id: int, tier: Tier) -> Portfolio:
        account, gw = await self.trading.active(uow, user_id, tier)
        pnl, info, positions = await self.trading.day_pnl(gw, self.now())
        digits = {p.symbol: await self.hub.digits(p.symbol) for p in positions}
        return Portfolio(account.kind, account.login, info.currency, info.balance, info.equity, info.margin_free,
                         pnl.realized, pnl.floating, positions, digits)  # fmt: skip

    async def record(self, uow: Any, user_id: int, kind: AccountKind, login: int, info: Account) -> bool:
        """Store one snapshot of the account now (the caller commits)."""
        snap = EquitySnapshot(user_id, kind.value, login, int(self.now().timestamp()), info.balance, info.equity)
        return bool(await uow.equity.add([snap]))

    async def snapshot(self, uow: Any, user_id: int, tier: Tier) -> bool:
        """Snapshot the user's active account (the recorder job; commits)."""
        account, gw = await self.trading.active(uow, user_id, tier)
        async with market_errors():
            info = await gw.account()
        added = await self.record(uow, user_id, account.kind, account.login, info)
        await uow.commit()
        return added

    async def _buy_and_hold(self, stats: DealStats, since: int | None, now: datetime) -> float | None:
        if stats.first_trade is None:
            return None
        symbols, first = stats.most_traded, stats.first_trade
        start = datetime.fromtimestamp(since if since is not None else first, UTC)
        tf = Timeframe.H1 if now - start <= timedelta(days=8) else Timeframe.D1
        key = (symbols, int(start.timestamp()), tf)
        cached = self._bh.get(key)
        if cached is not None and time.monotonic() - cached[0] < BENCH_TTL:
            return cached[1]
        value = await self._bars_return(symbols, start, now, tf)
        if len(self._bh) > 10_000:  # a bounded cache: drop the oldest half
            for old in sorted(self._bh, key=lambda k: self._bh[k][0])[:5_000]:
                del self._bh[old]
        self._bh[key] = (time.monotonic(), value)
        return value

    async def _bars_return(
        self, symbols: tuple[str, ...], start: datetime, now: datetime, tf: Timeframe
    ) -> float | None:
        gw = self.hub.data_gateway()
        prices: dict[str, tuple[float, float]] = {}
        for symbol in symbols:
            try:
                bars = await gw.bars_range(symbol, tf, start - timedelta(seconds=tf.seconds), now)
            except Exception:  # a symbol without history only drops out of the benchmark
                log.debug("no bars for %s", symbol, exc_info=True)
                continue
            if bars:
                prices[symbol] = (bars[0].open, bars[-1].close)
        return m.buy_and_hold(prices)

    async def _platform(self, uow: Any, tier: Tier, period: Period, now: datetime) -> tuple[float | None, int]:
        key = (tier.code, period)
        cached = self._peers.get(key)
        if cached is not None and time.monotonic() - cached[0] < PEERS_TTL:
            return cached[1], cached[2]
        start = period.start(now)
        returns = await uow.equity.tier_returns(tier.code, int(start.timestamp()) if start else None)
        median, peers = (m.median(returns), len(returns)) if len(returns) >= self.min_peers else (None, 0)
        self._peers[key] = (time.monotonic(), median, peers)
        return median, peers
