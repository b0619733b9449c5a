"""Vectorized technical indicators, causal by construction.

Every function takes arrays with time on the LAST axis (1-D for one series,
2-D for a stack of windows) and returns full arrays of the same shape. The
value at index ``i`` depends only on inputs at indices ``<= i``; bars before
an indicator has enough history are NaN.

Conventions (the pure-Python twins in ``reference.py`` spell them out bar by
bar, and the tests hold these functions to them):

* SMA(n): mean of the last n values; first value at index n-1.
* EMA(n): alpha = 2/(n+1), seeded with the SMA of the first n valid values.
* Wilder smoothing (RSI, ATR, ADX): alpha = 1/n, seeded with the SMA of the
  first n valid values.
* True range: TR[0] = high-low; later bars also reach back to the prior close.
* Bollinger(n, k): SMA(n) +/- k * population standard deviation (ddof=0).
* Donchian(n): highest high / lowest low of the last n bars, current included.

Recursive smoothers are evaluated in closed form per block: inside a block
``y_i = w^(i-s+1) * y_(s-1) + alpha * sum_j w^(i-j) x_j`` is a cumulative sum,
and blocks are short enough that ``w^-L`` never overflows. The rounding error
stays at the scale of the inputs, not of the block length.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from domain.agents.series import Bars

_MAX_EXP = 600.0  # keeps w**-L below ~1e260 inside a block


def _f(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def first_valid(x: np.ndarray) -> int:
    """Index of the first column where every row is finite (leading-NaN count)."""
    ok = np.isfinite(x).reshape(-1, x.shape[-1]).all(axis=0)
    idx = np.flatnonzero(ok)
    return int(idx[0]) if idx.size else x.shape[-1]


def smooth(x: Any, alpha: float, period: int, start: int | None = None) -> np.ndarray:
    """Exponential smoothing ``y_i = (1-alpha) y_(i-1) + alpha x_i`` seeded by an SMA.

    The seed is the mean of ``x[start : start+period]``, placed at index
    ``start+period-1``; ``start`` defaults to the first all-finite column.
    """
    x = _f(x)
    if period < 1 or not 0.0 < alpha <= 1.0:
        raise ValueError("period must be >= 1 and alpha in (0, 1]")
    out = np.full(x.shape, np.nan)
    m = x.shape[-1]
    s0 = first_valid(x) if start is None else start
    seed = s0 + period - 1
    if seed >= m:
        return out
    y = x[..., s0 : seed + 1].mean(axis=-1)
    out[..., seed] = y
    w = 1.0 - alpha
    if w == 0.0:
        out[..., seed + 1 :] = x[..., seed + 1 :]
        return out
    block = max(1, int(_MAX_EXP / -math.log(w)))
    i = seed + 1
    while i < m:
        j = min(m, i + block)
        k = np.arange(j - i, dtype=np.float64)
        s = np.cumsum(x[..., i:j] * w**-k, axis=-1)
        # out = w^(k+1) y + (alpha w^k) s, written in place (no temporaries of the window's size)
        vals = out[..., i:j]
        np.multiply(w ** (k + 1.0), y[..., None], out=vals)
        np.multiply(alpha * w**k, s, out=s)
        vals += s
        y = vals[..., -1]
        i = j
    return out


def sma(x: Any, n: int) -> np.ndarray:
    """Simple moving average over the last ``n`` values (leading NaNs skipped)."""
    x = _f(x)
    out = np.full(x.shape, np.nan)
    s0 = first_valid(x)
    m = x.shape[-1]
    if n < 1 or s0 + n > m:
        return out
    v = x[..., s0:]
    base = v[..., :1]  # de-meaning keeps the running sum small
    c = np.cumsum(v - base, axis=-1)
    tot = c[..., n - 1 :].copy()
    tot[..., 1:] -= c[..., :-n]
    out[..., s0 + n - 1 :] = tot / n + base
    return out


def ema(x: Any, n: int) -> np.ndarray:
    """EMA with alpha = 2/(n+1), seeded with the SMA of the first n values."""
    return smooth(x, 2.0 / (n + 1.0), n)


def wilder(x: Any, n: int) -> np.ndarray:
    """Wilder's moving average (alpha = 1/n), seeded with an SMA."""
    return smooth(x, 1.0 / n, n)


def rsi(close: Any, n: int = 14) -> np.ndarray:
    """Wilder's RSI in [0, 100]; first value at index n. Flat history gives 50."""
    c = _f(close)
    d = np.full(c.shape, np.nan)
    d[..., 1:] = np.diff(c, axis=-1)
    gain = np.where(d > 0, d, 0.0)
    loss = np.where(d < 0, -d, 0.0)
    gain[..., 0] = loss[..., 0] = np.nan
    ag = smooth(gain, 1.0 / n, n, start=1)
    al = smooth(loss, 1.0 / n, n, start=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 - 100.0 / (1.0 + ag / al)
    out = np.where(al == 0.0, np.where(ag > 0.0, 100.0, 50.0), out)
    return np.where(np.isnan(ag), np.nan, out)


def true_range(high: Any, low: Any, close: Any) -> np.ndarray:
    h, lo, c = _f(high), _f(low), _f(close)
    tr = h - lo
    prev = c[..., :-1]
    tr[..., 1:] = np.maximum(
        tr[..., 1:], np.maximum(np.abs(h[..., 1:] - prev), np.abs(lo[..., 1:] - prev))
    )
    return tr


def atr(high: Any, low: Any, close: Any, n: int = 14) -> np.ndarray:
    """Wilder's ATR; first value at index n-1 (TR[0] = high-low)."""
    return smooth(true_range(high, low, close), 1.0 / n, n, start=0)


def adx(high: Any, low: Any, close: Any, n: int = 14, *, tr: np.ndarray | None = None
        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wilder's (ADX, +DI, -DI). DIs start at index n, ADX at index 2n-1; ``tr``: the true range if known."""
    h, lo = _f(high), _f(low)
    up = np.full(h.shape, np.nan)
    dn = np.full(h.shape, np.nan)
    up[..., 1:] = h[..., 1:] - h[..., :-1]
    dn[..., 1:] = lo[..., :-1] - lo[..., 1:]
    pdm = np.where((up > dn) & (up > 0), up, 0.0)
    mdm = np.where((dn > up) & (dn > 0), dn, 0.0)
    tr = true_range(h, lo, close) if tr is None else tr.copy()
    pdm[..., 0] = mdm[..., 0] = tr[..., 0] = np.nan
    a = 1.0 / n
    s_tr = smooth(tr, a, n, start=1)
    s_p = smooth(pdm, a, n, start=1)
    s_m = smooth(mdm, a, n, start=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pdi = np.where(s_tr > 0, 100.0 * s_p / s_tr, 0.0)
        mdi = np.where(s_tr > 0, 100.0 * s_m / s_tr, 0.0)
        tot = pdi + mdi
        dx = np.where(tot > 0, 100.0 * np.abs(pdi - mdi) / tot, 0.0)
    invalid = np.isnan(s_tr)
    pdi[invalid] = mdi[invalid] = dx[invalid] = np.nan
    return smooth(dx, a, n, start=n), pdi, mdi


def rolling_std(x: Any, n: int) -> np.ndarray:
    """Population standard deviation of the last n values.

    Blocked sums: the series is cut into blocks of n bars, each summed relative
    to its own first value (so the sums stay at the scale of local moves and the
    ``E[d^2] - E[d]^2`` cancellation stays harmless); a window is the suffix of
    one block plus the prefix of the next, re-anchored exactly.
    """
    x = _f(x)
    m = x.shape[-1]
    out = np.full(x.shape, np.nan)
    if n < 1 or m < n:
        return out
    pad = (-m) % n
    xp = np.concatenate([x, np.repeat(x[..., -1:], pad, axis=-1)], axis=-1)
    blocks = xp.reshape(x.shape[:-1] + (-1, n))
    anchor = blocks[..., :1]
    d = blocks - anchor
    p1, p2 = np.cumsum(d, axis=-1), np.cumsum(d * d, axis=-1)  # prefix sums to q
    q1 = np.cumsum(d[..., ::-1], axis=-1)[..., ::-1]  # suffix sums from q
    q2 = np.cumsum((d * d)[..., ::-1], axis=-1)[..., ::-1]
    # left part of the window ending at (block b, position q): previous block from q+1
    l1 = np.zeros_like(d)
    l2 = np.zeros_like(d)
    l1[..., 1:, : n - 1] = q1[..., :-1, 1:]
    l2[..., 1:, : n - 1] = q2[..., :-1, 1:]
    k = (n - 1 - np.arange(n, dtype=np.float64))  # bars in the left part
    delta = np.zeros_like(anchor)
    delta[..., 1:, :] = anchor[..., :-1, :] - anchor[..., 1:, :]  # previous anchor minus this one
    s1 = l1 + k * delta + p1
    s2 = l2 + 2.0 * delta * l1 + k * delta * delta + p2
    mean = s1 / n
    var = np.maximum(s2 / n - mean * mean, 0.0).reshape(xp.shape)[..., :m]
    out[..., n - 1 :] = np.sqrt(var[..., n - 1 :])
    return out


def bollinger(close: Any, n: int = 20, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(middle, upper, lower) bands: SMA(n) +/- k population std."""
    mid = sma(close, n)
    sd = rolling_std(close, n)
    return mid, mid + k * sd, mid - k * sd


def macd(
    close: Any, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(line, signal, histogram); the signal is an EMA of the line from its first value."""
    line = ema(close, fast) - ema(close, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


def roc(close: Any, n: int = 10) -> np.ndarray:
    """Rate of change in percent over n bars."""
    c = _f(close)
    out = np.full(c.shape, np.nan)
    out[..., n:] = 100.0 * (c[..., n:] / c[..., :-n] - 1.0)
    return out


def rolling_max(x: Any, n: int) -> np.ndarray:
    """Maximum of the last n values (van Herk / Gil-Werman: O(1) per bar, exact)."""
    x = _f(x)
    m = x.shape[-1]
    out = np.full(x.shape, np.nan)
    if n < 1 or m < n:
        return out
    pad = (-m) % n
    xp = np.concatenate([x, np.full(x.shape[:-1] + (pad,), -np.inf)], axis=-1)
    blocks = xp.reshape(x.shape[:-1] + (-1, n))
    pre = np.maximum.accumulate(blocks, axis=-1).reshape(xp.shape)  # max from block start
    suf = np.maximum.accumulate(blocks[..., ::-1], axis=-1)[..., ::-1].reshape(xp.shape)  # to block end
    # the window [i-n+1, i] spans at most two blocks: suffix of one, prefix of the next
    out[..., n - 1 :] = np.maximum(suf[..., : m - n + 1], pre[..., n - 1 : m])
    return out


def donchian(high: Any, low: Any, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower): highest high and lowest low of the last n bars, current included."""
    return rolling_max(high, n), -rolling_max(-_f(low), n)


def shift(x: np.ndarray, k: int = 1) -> np.ndarray:
    """Value ``k`` bars ago (NaN where there is none); keeps causality explicit."""
    out = np.full(x.shape, np.nan)
    if k < x.shape[-1]:
        out[..., k:] = x[..., :-k] if k else x
    return out


def percentile_rank(x: Any, lookback: int) -> np.ndarray:
    """Fraction of the previous ``lookback`` values strictly below the current one."""
    x = _f(x)
    out = np.full(x.shape, np.nan)
    if x.shape[-1] > lookback:
        prev = sliding_window_view(x[..., :-1], lookback, axis=-1)
        cur = x[..., lookback:]
        out[..., lookback:] = (prev < cur[..., None]).mean(axis=-1)
        out[..., lookback:][np.isnan(prev).any(axis=-1) | np.isnan(cur)] = np.nan
    return out


class IndicatorSet:
    """Memoized indicators over one ``Series`` or ``Panel``, shared by the agents."""

    def __init__(self, bars: Bars) -> None:
        self.bars = bars
        self._memo: dict[tuple[object, ...], Any] = {}

    def _get(self, key: tuple[object, ...], make: Any) -> Any:
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def sma(self, n: int) -> np.ndarray:
        return self._get(("sma", n), lambda: sma(self.bars.close, n))

    def ema(self, n: int) -> np.ndarray:
        return self._get(("ema", n), lambda: ema(self.bars.close, n))

    def rsi(self, n: int = 14) -> np.ndarray:
        return self._get(("rsi", n), lambda: rsi(self.bars.close, n))

    def true_range(self) -> np.ndarray:
        b = self.bars
        return self._get(("tr",), lambda: true_range(b.high, b.low, b.close))

    def atr(self, n: int = 14) -> np.ndarray:
        return self._get(("atr", n), lambda: smooth(self.true_range(), 1.0 / n, n, start=0))  # = atr()

    def adx(self, n: int = 14) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        b = self.bars
        return self._get(("adx", n), lambda: adx(b.high, b.low, b.close, n, tr=self.true_range()))

    def bollinger(self, n: int = 20, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        def make() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            mid = self.sma(n)  # the memoized SMA: ``bollinger`` computes the same one
            sd = rolling_std(self.bars.close, n)
            return mid, mid + k * sd, mid - k * sd

        return self._get(("bb", n, k), make)

    def macd(self, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[np.ndarray, ...]:
        return self._get(("macd", fast, slow, signal), lambda: macd(self.bars.close, fast, slow, signal))

    def roc(self, n: int = 10) -> np.ndarray:
        return self._get(("roc", n), lambda: roc(self.bars.close, n))

    def donchian(self, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
        b = self.bars
        return self._get(("donchian", n), lambda: donchian(b.high, b.low, n))
