"""Performance metrics: pure functions over deals and an equity series.

Inputs are the gateway's :class:`domain.market.models.Deal` list and an equity
series ``[(epoch_s, equity), ...]`` sorted by time. Everything here is pure and
vectorized with numpy, so one year of hourly equity and a few thousand deals
take well under a millisecond or two. The ``*_of`` variants take the series as
numpy arrays (the service keeps them cached); :func:`deal_stats` and
:func:`combine` split :func:`analyse` into the part that depends on the deals
only and the part that depends on the equity series.

Definitions (the unit tests compute these by hand):

- A *trade* is an ``out`` (or ``inout``) deal. Its result is
  ``profit + commission + swap`` of the closing deal plus the commission and
  swap of the ``in`` deals of the same position (charged to the position's
  first closing deal in the set).
- *Net P/L* is the sum of trade results plus the costs of ``in`` deals whose
  position has no closing deal in the set (positions still open).
- *Win rate*: trades with result > 0 over all trades, percent.
- *Profit factor*: gross profit / gross loss (None without losing trades).
- *Expectancy*: net result of trades / trades.
- *Return %*: net P/L over the first equity of the series, percent.
- *Max drawdown*: the deepest fall below a running peak of the equity series,
  in percent of that peak, and the money lost in that same episode (equity
  100, 50, 1000, 900, 950 gives 50 % and 50, not the 100 of the later, 10 %
  fall): one episode, so the two figures always belong together.
- *Sharpe / Sortino*: from daily returns (the last equity of each UTC day,
  the day before the first one seeded by the first point), annualized with
  sqrt(252). Sharpe = mean / sample std; Sortino = mean / downside deviation
  where downside deviation = sqrt(mean(min(r, 0)^2)). None with fewer than two
  daily returns or a zero deviation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import chain
from zoneinfo import ZoneInfo

import numpy as np

from domain.equity import TRADING_DAYS, deepest_drawdown
from domain.market.models import Deal

CLOSING = ("out", "inout", "out_by")  # deal entries that close (part of) a position
DAY = 86_400
EquityPoint = tuple[int, float]


class Period(StrEnum):
    TODAY = "today"
    WEEK = "week"
    MONTH = "month"
    ALL = "all"

    @classmethod
    def parse(cls, raw: str | None) -> Period | None:
        """``None``/empty → month (the default); unknown → None."""
        if not raw:
            return cls.MONTH
        return _ALIASES.get(raw.strip().lower())

    def start(self, now: datetime, tz: str = "UTC") -> datetime | None:
        """Where the period begins (UTC), in the user's time zone; None for ALL."""
        if self is Period.ALL:
            return None
        try:
            zone = ZoneInfo(tz)
        except (KeyError, ValueError):
            zone = ZoneInfo("UTC")
        local = now.astimezone(zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        if self is Period.TODAY:
            return midnight.astimezone(UTC)
        if self is Period.WEEK:
            return (midnight - timedelta(days=6)).astimezone(UTC)
        return (midnight - timedelta(days=29)).astimezone(UTC)


_ALIASES = {
    "today": Period.TODAY,
    "day": Period.TODAY,
    "d": Period.TODAY,
    "week": Period.WEEK,
    "w": Period.WEEK,
    "7d": Period.WEEK,
    "month": Period.MONTH,
    "m": Period.MONTH,
    "30d": Period.MONTH,
    "all": Period.ALL,
}


@dataclass(frozen=True, slots=True)
class Trade:
    """One closing deal with its net result (costs of the opening deal included)."""

    ticket: int
    symbol: str
    time: int
    result: float


@dataclass(frozen=True, slots=True)
class SymbolStats:
    symbol: str
    trades: int
    wins: int
    net: float
    gross_profit: float
    gross_loss: float  # a positive number
    win_rate: float | None  # percent
    profit_factor: float | None


@dataclass(frozen=True, slots=True)
class Drawdown:
    """The deepest fall below a running peak (in percent): both figures from that one episode."""

    money: float  # the money fall of that episode, >= 0
    pct: float  # that fall relative to its peak, percent, >= 0
    peak_time: int | None
    trough_time: int | None


@dataclass(frozen=True, slots=True)
class Metrics:
    trades: int
    wins: int
    losses: int
    net: float
    gross_profit: float
    gross_loss: float  # a positive number
    costs: float  # commission + swap (negative = paid)
    return_pct: float | None
    win_rate: float | None  # percent
    profit_factor: float | None
    avg_win: float | None
    avg_loss: float | None  # a negative number
    expectancy: float | None
    max_drawdown: float  # money lost in the deepest (percent) drawdown
    max_drawdown_pct: float  # that same drawdown in percent of its peak
    sharpe: float | None
    sortino: float | None
    best_symbol: str | None
    worst_symbol: str | None
    start_equity: float | None
    end_equity: float | None
    max_drawdown_peak: int | None = None  # epoch seconds of that drawdown's peak
    max_drawdown_trough: int | None = None  # and of its trough


def trades(deals: Iterable[Deal]) -> list[Trade]:
    """Closing deals with their results, oldest first."""
    ordered = sorted(deals, key=lambda d: (d.time, d.ticket))
    entry_costs: dict[int, float] = {}
    for d in ordered:
        if d.entry == "in":
            entry_costs[d.position_id] = entry_costs.get(d.position_id, 0.0) + d.commission + d.swap
    out: list[Trade] = []
    for d in ordered:
        if d.entry not in CLOSING:
            continue
        result = d.profit + d.commission + d.swap + entry_costs.pop(d.position_id, 0.0)
        out.append(Trade(d.ticket, d.symbol, d.time, result))
    return out


def open_costs(deals: Iterable[Deal]) -> float:
    """Costs of opening deals whose position has no closing deal in the set."""
    closed = {d.position_id for d in deals if d.entry in CLOSING}
    return sum(d.commission + d.swap for d in deals if d.entry == "in" and d.position_id not in closed)


def by_symbol(items: Sequence[Trade]) -> list[SymbolStats]:
    """Per-symbol breakdown, best net first."""
    if not items:
        return []
    symbols = np.array([t.symbol for t in items], dtype=object)
    return _by_symbol(symbols, np.fromiter((t.result for t in items), dtype=float, count=len(items)))


def _by_symbol(symbols: np.ndarray, results: np.ndarray) -> list[SymbolStats]:
    if not len(results):
        return []
    names, inverse = np.unique(symbols.astype(str), return_inverse=True)
    n = len(names)
    count = np.bincount(inverse, minlength=n)
    wins = np.bincount(inverse, weights=(results > 0).astype(float), minlength=n)
    net = np.bincount(inverse, weights=results, minlength=n)
    gp = np.bincount(inverse, weights=np.where(results > 0, results, 0.0), minlength=n)
    gl = -np.bincount(inverse, weights=np.where(results < 0, results, 0.0), minlength=n)
    stats = [
        SymbolStats(
            symbol=str(names[i]),
            trades=int(count[i]),
            wins=int(wins[i]),
            net=_r(net[i]),
            gross_profit=_r(gp[i]),
            gross_loss=_r(gl[i]),
            win_rate=_r(wins[i] / count[i] * 100) if count[i] else None,
            profit_factor=_r(gp[i] / gl[i]) if gl[i] > 0 else None,
        )
        for i in range(n)
    ]
    stats.sort(key=lambda s: (-s.net, s.symbol))
    return stats


def drawdown(equity: Sequence[EquityPoint]) -> Drawdown:
    if len(equity) < 2:
        return Drawdown(0.0, 0.0, None, None)
    return drawdown_of(*_arrays(equity))


def drawdown_of(times: np.ndarray, values: np.ndarray) -> Drawdown:
    """:func:`drawdown` on the arrays of a series."""
    worst = deepest_drawdown(values)
    if worst is None:
        return Drawdown(0.0, 0.0, None, None)
    money, pct, peak_i, trough_i = worst
    return Drawdown(_r(money), _r(pct), int(times[peak_i]), int(times[trough_i]))


def drawdown_series(equity: Sequence[EquityPoint]) -> list[EquityPoint]:
    """``(time, -percent below the running peak)``: 0 at a new high, negative below it."""
    if not equity:
        return []
    times, values = _arrays(equity)
    return list(zip(times.tolist(), drawdown_pct(values).tolist(), strict=True))


def drawdown_pct(values: np.ndarray) -> np.ndarray:
    """Percent below the running peak for each point (<= 0), rounded to 4 decimals."""
    if not len(values):
        return np.empty(0)
    peaks = np.maximum.accumulate(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(peaks > 0, (values - peaks) / peaks * 100, 0.0)
    return np.round(pct, 4)


def daily_returns(equity: Sequence[EquityPoint]) -> np.ndarray:
    """Returns between the closing equities of consecutive UTC days with data.

    The first point opens the first day, so a series within one day yields one return.
    """
    if len(equity) < 2:
        return np.empty(0)
    return daily_returns_of(*_arrays(equity))


def daily_returns_of(times: np.ndarray, values: np.ndarray) -> np.ndarray:
    """:func:`daily_returns` on the arrays of a series."""
    if len(values) < 2:
        return np.empty(0)
    days = times // DAY
    last = np.flatnonzero(np.r_[days[1:] != days[:-1], True])  # last point of each day
    closes = np.r_[values[0], values[last]]
    prev = closes[:-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(prev != 0, np.diff(closes) / prev, 0.0)
    return r


def sharpe(returns: np.ndarray) -> float | None:
    if len(returns) < 2:
        return None
    sd = float(np.std(returns, ddof=1))
    if not sd > 1e-12:
        return None
    return _r(float(np.mean(returns)) / sd * math.sqrt(TRADING_DAYS))


def sortino(returns: np.ndarray) -> float | None:
    if len(returns) < 2:
        return None
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if not downside > 1e-12:
        return None
    return _r(float(np.mean(returns)) / downside * math.sqrt(TRADING_DAYS))


@dataclass(frozen=True, slots=True)
class DealColumns:
    """Deals as numpy columns, sorted by (time, ticket): a few arrays instead of thousands of objects."""

    ticket: np.ndarray  # int64
    position: np.ndarray  # int64
    closing: np.ndarray  # bool: an out / inout / out_by deal
    opening: np.ndarray  # bool: an in deal
    symbol: np.ndarray  # int64 index into ``names``
    names: tuple[str, ...]
    time: np.ndarray  # int64, epoch seconds
    result: np.ndarray  # profit + commission + swap
    cost: np.ndarray  # commission + swap

    @classmethod
    def of(cls, deals: Iterable[Deal]) -> DealColumns:
        ordered = sorted(deals, key=lambda d: (d.time, d.ticket))
        n = len(ordered)
        codes: dict[str, int] = {}
        symbol = np.fromiter((codes.setdefault(d.symbol, len(codes)) for d in ordered), dtype=np.int64, count=n)
        return cls(
            ticket=np.fromiter((d.ticket for d in ordered), dtype=np.int64, count=n),
            position=np.fromiter((d.position_id for d in ordered), dtype=np.int64, count=n),
            closing=np.fromiter((d.entry in CLOSING for d in ordered), dtype=bool, count=n),
            opening=np.fromiter((d.entry == "in" for d in ordered), dtype=bool, count=n),
            symbol=symbol,
            names=tuple(codes),
            time=np.fromiter((d.time for d in ordered), dtype=np.int64, count=n),
            result=np.fromiter((d.profit + d.commission + d.swap for d in ordered), dtype=float, count=n),
            cost=np.fromiter((d.commission + d.swap for d in ordered), dtype=float, count=n),
        )

    def __len__(self) -> int:
        return len(self.ticket)

    def since(self, start: int | None) -> DealColumns:
        """The deals at or after ``start`` (all for None)."""
        if start is None:
            return self
        i = int(np.searchsorted(self.time, start, "left"))
        return self._take(slice(i, None)) if i else self

    def merged(self, other: DealColumns) -> DealColumns:
        """Both sets in one, re-sorted by (time, ticket)."""
        names = dict.fromkeys(self.names + other.names)
        index = {name: i for i, name in enumerate(names)}
        remap = np.array([index[name] for name in other.names], dtype=np.int64)
        both = DealColumns(
            *(np.concatenate([getattr(self, f), getattr(other, f)]) for f in ("ticket", "position", "closing",
                                                                               "opening")),
            np.concatenate([self.symbol, remap[other.symbol] if len(other) else other.symbol]),
            tuple(names),
            *(np.concatenate([getattr(self, f), getattr(other, f)]) for f in ("time", "result", "cost")),
        )  # fmt: skip
        return both._take(np.lexsort((both.ticket, both.time)))

    def _take(self, index: slice | np.ndarray) -> DealColumns:
        return DealColumns(self.ticket[index], self.position[index], self.closing[index], self.opening[index],
                           self.symbol[index], self.names, self.time[index], self.result[index], self.cost[index])  # fmt: skip


@dataclass(frozen=True, slots=True)
class DealStats:
    """Everything a period's metrics take from its deals alone (cacheable while the deals stay the same)."""

    symbols: list[SymbolStats]
    trades: int
    wins: int
    losses: int
    net: float
    gross_profit: float
    gross_loss: float
    costs: float
    avg_win: float | None
    avg_loss: float | None
    expectancy: float | None
    most_traded: tuple[str, ...]  # up to ``top`` symbols with the most trades (ties: the first traded), sorted
    first_trade: int | None  # epoch seconds of the first closing deal


def deal_stats(deals: Sequence[Deal] | DealColumns, top: int = 5) -> DealStats:
    """:func:`trades`, :func:`open_costs` and :func:`by_symbol` on columns, in a handful of numpy passes."""
    cols = deals if isinstance(deals, DealColumns) else DealColumns.of(deals)
    npos = 0
    if len(cols):
        positions, pos_index = np.unique(cols.position, return_inverse=True)
        npos = len(positions)
    else:
        pos_index = np.empty(0, np.int64)
    in_costs = np.bincount(pos_index, weights=np.where(cols.opening, cols.cost, 0.0), minlength=npos)
    closing = np.flatnonzero(cols.closing)
    results = cols.result[closing].copy()
    closed_pos = pos_index[closing]
    _u, first = np.unique(closed_pos, return_index=True)  # each position's first closing deal takes its entry costs
    results[first] += in_costs[closed_pos[first]]
    has_close = np.zeros(npos, dtype=bool)
    has_close[closed_pos] = True
    open_cost = float(in_costs[~has_close].sum())
    wins, losses = results[results > 0], results[results < 0]
    n = len(results)
    trade_symbols = cols.symbol[closing]
    symbols = _by_symbol(np.array(cols.names, dtype=object)[trade_symbols] if n else np.empty(0, object), results)
    most: tuple[str, ...] = ()
    if n:
        count = np.bincount(trade_symbols, minlength=len(cols.names))
        seen = np.full(len(cols.names), n)
        np.minimum.at(seen, trade_symbols, np.arange(n))
        ranked = [i for i in np.lexsort((seen, -count)) if count[i] > 0][:top]
        most = tuple(sorted(cols.names[i] for i in ranked))
    return DealStats(
        symbols=symbols,
        trades=n,
        wins=int(len(wins)),
        losses=int(len(losses)),
        net=float(results.sum()) + open_cost,
        gross_profit=float(wins.sum()),
        gross_loss=float(-losses.sum()),
        costs=float(cols.cost.sum()),
        avg_win=_r(float(wins.mean())) if len(wins) else None,
        avg_loss=_r(float(losses.mean())) if len(losses) else None,
        expectancy=_r(float(results.mean())) if n else None,
        most_traded=most,
        first_trade=int(cols.time[closing[0]]) if n else None,
    )


def combine(stats: DealStats, times: np.ndarray, values: np.ndarray) -> Metrics:
    """The metrics of a period from its deal statistics and its equity series (as arrays)."""
    n, symbols = stats.trades, stats.symbols
    start = float(values[0]) if len(values) else None
    end = float(values[-1]) if len(values) else None
    dd = drawdown_of(times, values)
    returns = daily_returns_of(times, values)
    gross_loss = stats.gross_loss
    return Metrics(
        trades=n,
        wins=stats.wins,
        losses=stats.losses,
        net=_r(stats.net),
        gross_profit=_r(stats.gross_profit),
        gross_loss=_r(gross_loss),
        costs=_r(stats.costs),
        return_pct=_r(stats.net / start * 100) if start else None,
        win_rate=_r(stats.wins / n * 100) if n else None,
        profit_factor=_r(stats.gross_profit / gross_loss) if gross_loss > 0 else None,
        avg_win=stats.avg_win,
        avg_loss=stats.avg_loss,
        expectancy=stats.expectancy,
        max_drawdown=dd.money,
        max_drawdown_pct=dd.pct,
        sharpe=sharpe(returns),
        sortino=sortino(returns),
        best_symbol=symbols[0].symbol if symbols and symbols[0].net > 0 else None,
        worst_symbol=symbols[-1].symbol if symbols and symbols[-1].net < 0 else None,
        start_equity=_r(start) if start is not None else None,
        end_equity=_r(end) if end is not None else None,
        max_drawdown_peak=dd.peak_time,
        max_drawdown_trough=dd.trough_time,
    )


def compute(deals: Sequence[Deal], equity: Sequence[EquityPoint]) -> Metrics:
    """Every metric of one period: ``deals`` and ``equity`` already cut to it."""
    return analyse(deals, equity)[0]


def analyse(deals: Sequence[Deal], equity: Sequence[EquityPoint]) -> tuple[Metrics, list[Trade], list[SymbolStats]]:
    """:func:`compute` plus the trades and the per-symbol breakdown it computed on the way."""
    stats = deal_stats(deals)
    times, values = _arrays(equity) if equity else (np.empty(0, np.int64), np.empty(0))
    return combine(stats, times, values), trades(deals), stats.symbols


def buy_and_hold(prices: Mapping[str, tuple[float, float]]) -> float | None:
    """Equal-weight buy-and-hold return (percent) of the symbols: ``{symbol: (first, last)}``."""
    changes = [(last - first) / first * 100 for first, last in prices.values() if first > 0]
    return _r(sum(changes) / len(changes)) if changes else None


def balance_curve(deals: Sequence[Deal], balance_now: float) -> list[EquityPoint]:
    """The balance after each deal, reconstructed backwards from today's balance.

    Starts with the balance before the first deal (at that deal's time). Deposits
    and withdrawals are not trade deals, so they show up as a shifted start only.
    """
    if not deals:
        return []
    ordered = sorted(deals, key=lambda d: (d.time, d.ticket))
    times = np.fromiter((d.time for d in ordered), dtype=np.int64, count=len(ordered))
    flows = np.fromiter((d.profit + d.commission + d.swap for d in ordered), dtype=float, count=len(ordered))
    t, v = balance_curve_of(times, flows, balance_now)
    return list(zip(t.tolist(), v.tolist(), strict=True))


def balance_curve_of(times: np.ndarray, flows: np.ndarray, balance_now: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`balance_curve` on the deals' times and cash flows (sorted by time, then ticket)."""
    if not len(times):
        return np.empty(0, np.int64), np.empty(0)
    after = balance_now - (flows.sum() - np.cumsum(flows))  # balance right after each deal
    before_first = after[0] - flows[0]
    keep = np.r_[times[1:] != times[:-1], True]  # one point per timestamp: the last balance at that second
    t = np.r_[times[0], times[keep]].astype(np.int64)
    v = np.r_[_r(float(before_first)), np.round(after[keep], 2)]
    if t[1] == t[0]:
        t[0] -= 1
    return t, v


def merge_curves(reconstructed: Sequence[EquityPoint], recorded: Sequence[EquityPoint]) -> list[EquityPoint]:
    """Recorded snapshots win; the reconstruction fills the time before the first one."""
    if not recorded:
        return list(reconstructed)
    first = recorded[0][0]
    return [p for p in reconstructed if p[0] < first] + list(recorded)


def median(values: Sequence[float]) -> float | None:
    return _r(float(np.median(np.asarray(values, dtype=float)))) if len(values) else None


def _arrays(equity: Sequence[EquityPoint]) -> tuple[np.ndarray, np.ndarray]:
    flat = np.fromiter(chain.from_iterable(equity), dtype=float, count=2 * len(equity)).reshape(-1, 2)
    return flat[:, 0].astype(np.int64), flat[:, 1]


def _r(value: float, digits: int = 2) -> float:
    return round(float(value), digits)
