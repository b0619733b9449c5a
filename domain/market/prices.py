"""The simulated terminal's price process: seeded, lazy, consistent.

Every symbol's bid is defined on a grid of 5-second "substeps" (each one is
the price of a tick). The grid is generated per UTC day and per symbol:

* a daily log-price series (Ornstein-Uhlenbeck around the symbol's level,
  slow mean reversion so decades stay realistic) fixes each day's open;
* inside the day, a Brownian bridge with intraday volatility seasonality
  joins today's open to tomorrow's; closed session minutes carry no variance
  (the price stands still) and produce no bars;
* crosses are products of their USD legs; a symbol may instead replay real
  H1 history, with a bridge through each bar's open, high, low and close.

Bars of every timeframe are aggregates of the same substeps, so an H1 bar is
exactly its M1 bars and the forming bar ends at the current tick. Any
substep can be generated on its own (seeded by symbol and day), so
``bars_range`` in 2019 costs the same as the last hour.
"""

from __future__ import annotations

import csv
import math
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, UTC
from pathlib import Path

import numpy as np

from domain.market import mt5api
from domain.market.symbols import (
    SEASONALITY,
    SPREAD_PROFILE,
    TICKS_PER_MINUTE,
    UNIVERSE,
    SymbolDef,
    weekly_minutes,
)

SUBSTEP_MS = 5_000
PER_MINUTE = 12
PER_HOUR = 720
PER_DAY = 17_280
DAY_S = 86_400
FIRST_DAY = 7_305  # 1990-01-01
LAST_DAY = 32_873  # 2060-01-01, exclusive
KAPPA = 1.0  # mean reversion per year of trading time

_TAG_DAILY, _TAG_PATH, _TAG_TICKS, _TAG_REPLAY = 1, 2, 3, 4


def weekday(day: int) -> int:
    """Monday=0 for a day number since 1970-01-01 (a Thursday)."""
    return (day + 3) % 7


def _sid(name: str) -> int:
    return zlib.crc32(name.encode())


@dataclass(frozen=True, slots=True)
class DayPath:
    """One symbol-day of substeps."""

    logp: np.ndarray  # unrounded log bid
    bid: np.ndarray  # bid rounded to the symbol's digits
    open: np.ndarray  # session open (a tick happened)
    ticks: np.ndarray  # tick count of each substep


@dataclass(slots=True)
class ReplaySeries:
    """Real H1 bars a symbol replays (times are bar opens, UTC seconds)."""

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    index: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.index = {int(t): i for i, t in enumerate(self.time)}

    @property
    def start(self) -> int:
        return int(self.time[0])

    @property
    def end(self) -> int:
        return int(self.time[-1]) + 3600

    @classmethod
    def from_csv(cls, path: str | Path, *, shift_weeks: int = 0) -> ReplaySeries:
        """Load ``time,open,high,low,close[,volume]`` hourly bars (UTC).

        ``shift_weeks`` moves the history by whole weeks, which keeps every
        bar on its original weekday and hour.
        """
        rows: dict[int, tuple[float, float, float, float, int]] = {}
        with open(path, newline="") as fh:
            for rec in csv.DictReader(fh):
                when = datetime.fromisoformat(rec["time"].strip())
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                t = int(when.timestamp()) + shift_weeks * 7 * DAY_S
                if t % 3600:
                    raise ValueError(f"{path}: bar {rec['time']} is not on an hour boundary")
                o, h, lo, c = (float(rec[k]) for k in ("open", "high", "low", "close"))
                if not (lo <= min(o, c) and h >= max(o, c)):
                    raise ValueError(f"{path}: bar {rec['time']} has inconsistent OHLC")
                rows[t] = (o, h, lo, c, int(float(rec.get("volume") or 0)))
        if not rows:
            raise ValueError(f"{path}: no bars")
        times = sorted(rows)
        cols = list(zip(*(rows[t] for t in times), strict=True))
        return cls(
            np.array(times, dtype=np.int64),
            np.array(cols[0]),
            np.array(cols[1]),
            np.array(cols[2]),
            np.array(cols[3]),
            np.array(cols[4], dtype=np.int64),
        )


class _Model:
    """Per-symbol constants: session mask, variance and spread by minute."""

    def __init__(self, d: SymbolDef, seed: int) -> None:
        self.d = d
        self.sid = _sid(d.spec.name)
        self.minutes = weekly_minutes(d.session)  # (7, 1440) bool
        season = np.repeat(np.array(SEASONALITY[d.session]), 60)
        m2 = (season**2)[None, :] * self.minutes
        open_min = max(int(self.minutes.sum()), 1)
        substeps_per_year = open_min * PER_MINUTE * 365.25 / 7
        mean_m2 = m2.sum() / open_min
        self.var_minute = d.vol**2 * m2 / mean_m2 / substeps_per_year  # per substep
        self.day_var = self.var_minute.sum(axis=1) * PER_MINUTE  # (7,)
        self.lam_minute = TICKS_PER_MINUTE[d.session] / PER_MINUTE * season * 0.5
        spread = np.round(np.array(SPREAD_PROFILE[d.session]) * d.spread).astype(np.int32)
        self.spread_minute = np.repeat(spread, 60)
        self.seed = seed
        self._daily: np.ndarray | None = None

    def daily(self) -> np.ndarray:
        """Log price at 00:00 UTC of each day FIRST_DAY … LAST_DAY."""
        if self._daily is None:
            d = self.d
            mu = math.log(d.price)
            n = LAST_DAY - FIRST_DAY + 1
            draws = np.random.default_rng([self.seed, self.sid, _TAG_DAILY]).standard_normal(n + 1)
            z0, z = draws[0], draws[1:]
            wd = (np.arange(FIRST_DAY, FIRST_DAY + n) + 3) % 7
            tau = self.day_var[wd] / d.vol**2  # years of trading time per day
            a = np.exp(-KAPPA * tau)
            b = d.vol * np.sqrt((1 - a * a) / (2 * KAPPA)) * z
            # y[i+1] = a[i]*y[i] + b[i] with y = x - mu, solved in closed form per chunk
            out = np.empty(n)
            y = d.vol / math.sqrt(2 * KAPPA) * float(z0)  # start from the stationary law
            for s in range(0, n, 1024):
                ac, bc = a[s : s + 1024], b[s : s + 1024]
                log_p = np.concatenate([[0.0], np.cumsum(np.log(ac))])
                p = np.exp(log_p)
                ys = p * (y + np.concatenate([[0.0], np.cumsum(bc / p[1:])]))
                out[s : s + len(ac)] = ys[:-1]
                y = float(ys[-1])
            out += mu
            self._daily = out
        return self._daily


class PriceEngine:
    """Bids, sessions, ticks and bars of the whole universe for one seed."""

    def __init__(
        self,
        seed: int = 0,
        *,
        universe: dict[str, SymbolDef] | None = None,
        replay: dict[str, ReplaySeries] | None = None,
        cache_days: int = 96,
        cache_rows: int = 400_000,
    ) -> None:
        self.seed = int(seed)
        self.universe = dict(universe or UNIVERSE)
        self.replay = dict(replay or {})
        for name in self.replay:
            if name not in self.universe or self.universe[name].legs:
                raise ValueError(f"replay needs a base symbol of the universe, not {name!r}")
        self._models: dict[str, _Model] = {}
        self._offsets: dict[str, tuple[float, float]] = {}
        self._days: OrderedDict[tuple[str, int], DayPath] = OrderedDict()
        self._bars: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()
        self._bar_rows = 0
        self._cache_days = cache_days
        self._cache_rows = cache_rows

    # -- model --------------------------------------------------------------
    def model(self, name: str) -> _Model:
        m = self._models.get(name)
        if m is None:
            m = self._models[name] = _Model(self.universe[name], self.seed)
        return m

    def spread_at(self, name: str, g: int) -> int:
        """Spread in points at global substep ``g``."""
        return int(self.model(name).spread_minute[(g % PER_DAY) // PER_MINUTE])

    # -- day paths ----------------------------------------------------------
    def day(self, name: str, day: int) -> DayPath:
        key = (name, day)
        dp = self._days.get(key)
        if dp is not None:
            self._days.move_to_end(key)
            return dp
        dp = self._make_day(name, day)
        self._days[key] = dp
        if len(self._days) > self._cache_days:
            self._days.popitem(last=False)
        return dp

    def _synthetic(self, name: str, day: int) -> tuple[np.ndarray, np.ndarray]:
        m = self.model(name)
        daily = m.daily()
        if not FIRST_DAY <= day < LAST_DAY:
            edge = daily[0] if day < FIRST_DAY else daily[-1]
            return np.full(PER_DAY, edge), np.zeros(PER_DAY, dtype=bool)
        wd = weekday(day)
        var = np.repeat(m.var_minute[wd], PER_MINUTE)
        is_open = np.repeat(m.minutes[wd], PER_MINUTE)
        x0, x1 = daily[day - FIRST_DAY], daily[day - FIRST_DAY + 1]
        cum_var = np.cumsum(var)
        if cum_var[-1] <= 0:
            return np.full(PER_DAY, x0), is_open
        rng = np.random.default_rng([self.seed, m.sid, _TAG_PATH, day])
        walk = np.cumsum(rng.standard_normal(PER_DAY) * np.sqrt(var))
        # Brownian bridge under time-varying variance: end exactly at x1
        logp = x0 + walk - (walk[-1] - (x1 - x0)) * (cum_var / cum_var[-1])
        return logp, is_open

    def _ticks(self, name: str, day: int, is_open: np.ndarray) -> np.ndarray:
        m = self.model(name)
        rng = np.random.default_rng([self.seed, m.sid, _TAG_TICKS, day])
        lam = np.repeat(m.lam_minute, PER_MINUTE)
        return np.where(is_open, 1 + rng.poisson(lam), 0).astype(np.int32)

    def _make_day(self, name: str, day: int) -> DayPath:
        d = self.universe[name]
        digits = d.spec.digits
        if d.legs:
            parts = [(self.day(leg, day), sign) for leg, sign in d.legs]
            logp = sum((sign * p.logp for p, sign in parts), start=np.zeros(PER_DAY))
            is_open = np.logical_and.reduce([p.open for p, _ in parts])
            return DayPath(logp, np.round(np.exp(logp), digits), is_open, self._ticks(name, day, is_open))
        logp, is_open = self._synthetic(name, day)
        series = self.replay.get(name)
        if series is None:
            return DayPath(logp, np.round(np.exp(logp), digits), is_open, self._ticks(name, day, is_open))
        return self._replay_day(name, day, series, logp, is_open)

    def _replay_offsets(self, name: str, series: ReplaySeries) -> tuple[float, float]:
        """Shifts that join the synthetic process to the replay at both ends."""
        off = self._offsets.get(name)
        if off is None:
            g_first = series.start * 1000 // SUBSTEP_MS
            g_last = series.end * 1000 // SUBSTEP_MS - 1
            before = self._synthetic(name, (g_first - 1) // PER_DAY)[0][(g_first - 1) % PER_DAY]
            after = self._synthetic(name, g_last // PER_DAY)[0][g_last % PER_DAY]
            off = (math.log(series.open[0]) - before, math.log(series.close[-1]) - after)
            self._offsets[name] = off
        return off

    def _replay_day(self, name: str, day: int, series: ReplaySeries, logp: np.ndarray, is_open: np.ndarray) -> DayPath:
        digits = self.universe[name].spec.digits
        off_before, off_after = self._replay_offsets(name, series)
        day_s = day * DAY_S
        t = day_s + np.arange(PER_DAY) * (SUBSTEP_MS // 1000)
        before, after = t < series.start, t >= series.end
        logp = logp + np.where(before, off_before, 0.0) + np.where(after, off_after, 0.0)
        bid = np.round(np.exp(logp), digits)
        ticks = self._ticks(name, day, is_open)
        inside = ~(before | after)
        if inside.any():
            is_open = is_open & ~inside
            ticks = np.where(inside, 0, ticks).astype(np.int32)
            first = max(day_s, series.start)
            last = min(day_s + DAY_S, series.end)
            for hour in range(first, last, 3600):
                j0 = (hour - day_s) // 5
                i = series.index.get(hour)
                if i is None:  # no bar that hour: market shut, price stands
                    k = int(np.searchsorted(series.time, hour)) - 1
                    bid[j0 : j0 + PER_HOUR] = series.close[k] if k >= 0 else series.open[0]
                    continue
                rng = np.random.default_rng([self.seed, _sid(name), _TAG_REPLAY, hour // 3600])
                bid[j0 : j0 + PER_HOUR] = _bar_path(
                    series.open[i], series.high[i], series.low[i], series.close[i], digits, rng
                )
                is_open[j0 : j0 + PER_HOUR] = True
                ticks[j0 : j0 + PER_HOUR] = rng.multinomial(int(series.volume[i]), np.full(PER_HOUR, 1 / PER_HOUR))
            logp = np.where(inside, np.log(bid), logp)
        return DayPath(logp, bid, is_open, ticks)

    # -- ticks ---------------------------------------------------------------
    def is_open(self, name: str, t_ms: int) -> bool:
        g = t_ms // SUBSTEP_MS
        return bool(self.day(name, g // PER_DAY).open[g % PER_DAY])

    def quote(self, name: str, t_ms: int) -> tuple[int, float, int] | None:
        """(time_msc, bid, spread points) of the last tick at or before ``t_ms``."""
        g = t_ms // SUBSTEP_MS
        day, j = divmod(g, PER_DAY)
        for back in range(15):
            dp = self.day(name, day - back)
            hits = np.flatnonzero(dp.open[: j + 1] if back == 0 else dp.open)
            if hits.size:
                gg = (day - back) * PER_DAY + int(hits[-1])
                return gg * SUBSTEP_MS, float(dp.bid[hits[-1]]), self.spread_at(name, gg)
        return None

    def path(self, name: str, g0: int, g1: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Substeps ``g0..g1`` inclusive: (g, bid, open, spread points)."""
        gs, bids, opens = [], [], []
        g = g0
        while g <= g1:
            day, j = divmod(g, PER_DAY)
            k = min(PER_DAY, j + (g1 - g) + 1)
            dp = self.day(name, day)
            gs.append(np.arange(day * PER_DAY + j, day * PER_DAY + k, dtype=np.int64))
            bids.append(dp.bid[j:k])
            opens.append(dp.open[j:k])
            g = day * PER_DAY + k
        if not gs:
            empty = np.zeros(0)
            return empty.astype(np.int64), empty, empty.astype(bool), empty.astype(np.int32)
        g_all = np.concatenate(gs)
        spread = self.model(name).spread_minute[(g_all % PER_DAY) // PER_MINUTE]
        return g_all, np.concatenate(bids), np.concatenate(opens), spread

    # -- bars ----------------------------------------------------------------
    def _day_bars(self, name: str, day: int, tf_s: int, upto: int | None) -> np.ndarray:
        if not FIRST_DAY <= day < LAST_DAY:
            return np.zeros(0, dtype=mt5api.RATES_DTYPE)
        if upto is None:
            key = (name, day, tf_s)
            hit = self._bars.get(key)
            if hit is not None:
                self._bars.move_to_end(key)
                return hit
        dp = self.day(name, day)
        bars = _aggregate(day * DAY_S, dp, self.model(name).spread_minute, tf_s, upto)
        if upto is None:
            self._bars[key] = bars
            self._bar_rows += len(bars) + 1
            while self._bar_rows > self._cache_rows and self._bars:
                _, old = self._bars.popitem(last=False)
                self._bar_rows -= len(old) + 1
        return bars

    def rates_range(self, name: str, tf_s: int, from_s: int, to_s: int, now_ms: int) -> np.ndarray:
        """Bars opened in ``[from_s, to_s]`` and not after now, oldest first."""
        now_g = now_ms // SUBSTEP_MS
        now_day = now_g // PER_DAY
        to_s = min(to_s, now_ms // 1000)
        d0 = max(from_s // DAY_S, FIRST_DAY)
        d1 = min(to_s // DAY_S, now_day, LAST_DAY - 1)
        parts = [
            self._day_bars(name, d, tf_s, now_g % PER_DAY + 1 if d == now_day else None) for d in range(d0, d1 + 1)
        ]
        if not parts:
            return np.zeros(0, dtype=mt5api.RATES_DTYPE)
        bars = np.concatenate(parts)
        return bars[(bars["time"] >= from_s) & (bars["time"] <= to_s)]

    def rates_back(self, name: str, tf_s: int, end_s: int, now_ms: int, count: int) -> np.ndarray:
        """The last ``count`` bars opened at or before ``end_s`` (and now)."""
        now_g = now_ms // SUBSTEP_MS
        now_day = now_g // PER_DAY
        end_s = min(end_s, now_ms // 1000)
        day = min(end_s // DAY_S, LAST_DAY - 1)
        parts: list[np.ndarray] = []
        have = 0
        while have < count and day >= FIRST_DAY:
            bars = self._day_bars(name, day, tf_s, now_g % PER_DAY + 1 if day == now_day else None)
            bars = bars[bars["time"] <= end_s]
            parts.append(bars)
            have += len(bars)
            day -= 1
        if not parts:
            return np.zeros(0, dtype=mt5api.RATES_DTYPE)
        bars = np.concatenate(parts[::-1])
        return bars[-count:] if count else bars[:0]


def _aggregate(day_s: int, dp: DayPath, spread_minute: np.ndarray, tf_s: int, upto: int | None) -> np.ndarray:
    """OHLC bars of one day from its substeps (only the first ``upto`` ones)."""
    size = tf_s * 1000 // SUBSTEP_MS
    n = PER_DAY if upto is None else upto
    nb = -(-n // size)
    pad = nb * size - n
    bid = np.concatenate([dp.bid[:n], np.zeros(pad)]).reshape(nb, size)
    op = np.concatenate([dp.open[:n], np.zeros(pad, dtype=bool)]).reshape(nb, size)
    tk = np.concatenate([dp.ticks[:n], np.zeros(pad, dtype=np.int32)]).reshape(nb, size)
    rows = np.arange(nb)
    first = op.argmax(axis=1)
    last = size - 1 - op[:, ::-1].argmax(axis=1)
    out = np.zeros(nb, dtype=mt5api.RATES_DTYPE)
    out["time"] = day_s + rows * tf_s
    out["open"] = bid[rows, first]
    out["close"] = bid[rows, last]
    out["high"] = np.where(op, bid, -np.inf).max(axis=1)
    out["low"] = np.where(op, bid, np.inf).min(axis=1)
    out["tick_volume"] = (tk * op).sum(axis=1)
    out["spread"] = spread_minute[(rows * size + first) // PER_MINUTE]
    return out[op.any(axis=1)]


def _bar_path(o: float, h: float, lo: float, c: float, digits: int, rng: np.random.Generator) -> np.ndarray:
    """An hour of substeps that opens at o, closes at c and spans exactly [lo, h]."""
    n = PER_HOUR
    if h <= lo:
        return np.full(n, o)
    ih, il = (int(x) for x in rng.choice(np.arange(1, n - 1), size=2, replace=False))
    ih = 0 if o == h else n - 1 if c == h else ih
    il = 0 if o == lo else n - 1 if c == lo else il
    anchors = {0: o, n - 1: c}
    anchors.setdefault(ih, h)
    anchors.setdefault(il, lo)
    pts = sorted(anchors.items())
    path = np.empty(n)
    path[0] = o
    scale = (h - lo) / math.sqrt(n)
    for (i0, p0), (i1, p1) in zip(pts, pts[1:], strict=False):
        k = i1 - i0
        walk = np.cumsum(rng.standard_normal(k) * scale)
        frac = np.arange(1, k + 1) / k
        path[i0 + 1 : i1 + 1] = p0 + (p1 - p0) * frac + walk - walk[-1] * frac
    path = np.clip(np.round(path, digits), lo, h)
    for i, p in pts:
        path[i] = p
    return path
