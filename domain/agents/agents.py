"""The directional agents: Trend, MeanReversion, Momentum, Breakout and Learner.

Each agent computes its votes for every bar at once (``batch``), over a
``Series`` or a stacked ``Panel``; ``vote(series)`` is the vote at the last bar
and equals ``batch(series)`` there. Values at bar ``i`` use only bars ``<= i``
(the vote is what the agent would have said at that bar's close).

Confidence is always about the voted direction, lies in [0, 1], and is 0 for a
flat vote; each class docstring states what it measures.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from domain.agents.indicators import IndicatorSet, shift, sma
from domain.agents.series import Bars, Series
from domain.agents.votes import Vote, VoteBatch

ATR_PERIOD = 14  # the ATR reported with every vote (signal resolution and sizing use it)
FEATURE_CLIP = 10.0  # learner features are clipped to +/- this (their own units)
_FIT_BLOCK_BYTES = 1 << 20  # design matrices fitted together (about a core's L2 cache)


def _ind(bars: Bars, ind: IndicatorSet | None) -> IndicatorSet:
    return ind if ind is not None and ind.bars is bars else IndicatorSet(bars)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b where b > 0, NaN elsewhere (warmup or a degenerate denominator)."""
    a, b = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return np.divide(a, b, out=np.full(a.shape, np.nan), where=b > 0)


def _pack(
    agent: Agent,
    bars: Bars,
    ind: IndicatorSet,
    direction: np.ndarray,
    confidence: np.ndarray,
    key: np.ndarray,
    keys: tuple[str, ...],
    values: Mapping[str, np.ndarray],
) -> VoteBatch:
    d = direction.astype(np.int8)
    conf = np.where(d != 0, np.clip(np.nan_to_num(confidence), 0.0, 1.0), 0.0)
    return VoteBatch(
        agent=agent.name,
        horizon=agent.horizon,
        direction=d,
        confidence=conf,
        key=key.astype(np.int8),
        keys=keys,
        values=dict(values),
        time=bars.time,
        price=bars.close,
        atr=ind.atr(ATR_PERIOD),
    )


def _keyed(default: int, *cases: tuple[np.ndarray, int]) -> np.ndarray:
    """First matching case wins (like ``np.select``), integer codes."""
    conds = [c for c, _ in cases]
    codes = [k for _, k in cases]
    return np.select(conds, codes, default=default)


class Agent(ABC):
    """A directional agent: ``batch`` over all bars, ``vote`` at the last bar.

    ``reach``: how many bars before a bar its vote formula reads (beyond what
    the indicators themselves need). ``last`` then runs the formula on the
    indicators' last ``reach + 1`` bars only: the formulas are elementwise in
    time, so that is the same arithmetic on fewer numbers (the sweep over
    every window of the universe is what the agent runner does on each bar).
    """

    name: str
    horizon: int
    reach: ClassVar[int] = 0

    @abstractmethod
    def batch(self, bars: Bars, ind: IndicatorSet | None = None) -> VoteBatch:
        """Votes for every bar (and every row of a Panel)."""

    def last(self, bars: Bars, ind: IndicatorSet | None = None) -> VoteBatch:
        """Votes at the last bar only (time axis of length 1)."""
        ind = _ind(bars, ind)
        tail = _TailBars.of(bars, self.reach + 1)
        return self.batch(tail, _TailIndicators(ind, tail, self.reach + 1)).tail()

    def vote(self, series: Series, ind: IndicatorSet | None = None) -> Vote:
        """The vote at the series' last bar."""
        return self.last(series, ind).at(0)


@dataclass(frozen=True, slots=True)
class TrendAgent(Agent):
    """Follows an established trend: price > fast EMA > slow EMA with +DI > -DI
    (mirror for sell) and ADX at least ``adx_min``.

    Confidence: normalized ADX strength, ``min(1, ADX / adx_full)``.
    """

    name: str = "trend"
    horizon: int = 10
    fast: int = 20
    slow: int = 50
    adx_period: int = 14
    adx_min: float = 20.0
    adx_full: float = 50.0

    KEYS = ("trend.warmup", "trend.up", "trend.down", "trend.weak", "trend.mixed")

    def batch(self, bars: Bars, ind: IndicatorSet | None = None) -> VoteBatch:
        ind = _ind(bars, ind)
        c = bars.close
        fast, slow = ind.ema(self.fast), ind.ema(self.slow)
        adx, pdi, mdi = ind.adx(self.adx_period)
        up = (c > fast) & (fast > slow) & (pdi > mdi)
        down = (c < fast) & (fast < slow) & (mdi > pdi)
        strong = adx >= self.adx_min
        direction = np.where(up & strong, 1, np.where(down & strong, -1, 0))
        warm = np.isnan(fast) | np.isnan(slow) | np.isnan(adx)
        key = _keyed(4, (warm, 0), (direction > 0, 1), (direction < 0, 2), (up | down, 3))
        values = {"close": c, "fast": fast, "slow": slow, "adx": adx, "plus_di": pdi, "minus_di": mdi}
        return _pack(self, bars, ind, direction, adx / self.adx_full, key, self.KEYS, values)


@dataclass(frozen=True, slots=True)
class MeanReversionAgent(Agent):
    """Fades stretched moves: RSI beyond its band AND close beyond the Bollinger
    band, unless ADX says the market is trending (ADX >= ``adx_max``).

    Confidence: the mean of two depths, each capped to [0, 1] -- how far RSI is
    past its band as a fraction of the room left (``(30 - RSI) / 30`` for a
    buy) and how far the close is past the Bollinger band in band widths.
    """

    name: str = "reversion"
    horizon: int = 5
    rsi_period: int = 14
    rsi_low: float = 30.0
    rsi_high: float = 70.0
    bb_period: int = 20
    bb_k: float = 2.0
    adx_period: int = 14
    adx_max: float = 35.0

    KEYS = ("reversion.warmup", "reversion.oversold", "reversion.overbought", "reversion.trending", "reversion.neutral")

    def batch(self, bars: Bars, ind: IndicatorSet | None = None) -> VoteBatch:
        ind = _ind(bars, ind)
        c = bars.close
        r = ind.rsi(self.rsi_period)
        _, upper, lower = ind.bollinger(self.bb_period, self.bb_k)
        adx, _, _ = ind.adx(self.adx_period)
        width = upper - lower
        low_ext = (r <= self.rsi_low) & (c < lower)
        high_ext = (r >= self.rsi_high) & (c > upper)
        ranging = adx < self.adx_max
        direction = np.where(low_ext & ranging, 1, np.where(high_ext & ranging, -1, 0))
        rsi_depth = np.where(
            direction > 0, (self.rsi_low - r) / self.rsi_low, (r - self.rsi_high) / (100.0 - self.rsi_high)
        )
        band_depth = _safe_div(np.where(direction > 0, lower - c, c - upper), width)
        conf = 0.5 * np.clip(rsi_depth, 0.0, 1.0) + 0.5 * np.clip(np.nan_to_num(band_depth), 0.0, 1.0)
        warm = np.isnan(r) | np.isnan(width) | np.isnan(adx)
        key = _keyed(
            4, (warm, 0), (direction > 0, 1), (direction < 0, 2), (low_ext | high_ext, 3)
        )
        values = {
            "rsi": r,
            "percent_b": _safe_div(c - lower, width),
            "upper": upper,
            "lower": lower,
            "adx": adx,
        }
        return _pack(self, bars, ind, direction, conf, key, self.KEYS, values)


@dataclass(frozen=True, slots=True)
class MomentumAgent(Agent):
    """Rides momentum: MACD line and histogram and ROC all on the same side of 0.

    Confidence: the MACD histogram in ATR units relative to ``hist_full_atr``,
    ``min(1, |hist| / ATR / hist_full_atr)``.
    """

    name: str = "momentum"
    horizon: int = 5
    fast: int = 12
    slow: int = 26
    signal: int = 9
    roc_period: int = 10
    hist_full_atr: float = 0.25

    KEYS = ("momentum.warmup", "momentum.up", "momentum.down", "momentum.mixed")

    def batch(self, bars: Bars, ind: IndicatorSet | None = None) -> VoteBatch:
        ind = _ind(bars, ind)
        line, sig, hist = ind.macd(self.fast, self.slow, self.signal)
        rc = ind.roc(self.roc_period)
        a = ind.atr(ATR_PERIOD)
        up = (hist > 0) & (line > 0) & (rc > 0)
        down = (hist < 0) & (line < 0) & (rc < 0)
        hist_atr = _safe_div(hist, a)
        direction = np.where(up & np.isfinite(hist_atr), 1, np.where(down & np.isfinite(hist_atr), -1, 0))
        warm = np.isnan(hist) | np.isnan(rc) | np.isnan(hist_atr)
        key = _keyed(3, (warm, 0), (direction > 0, 1), (direction < 0, 2))
        values = {"macd": line, "signal": sig, "hist_atr": hist_atr, "roc": rc}
        return _pack(self, bars, ind, direction, np.abs(hist_atr) / self.hist_full_atr, key, self.KEYS, values)


@dataclass(frozen=True, slots=True)
class BreakoutAgent(Agent):
    """Trades a close beyond the previous ``channel`` bars' Donchian channel, kept
    only when the break is at least ``min_break_atr`` ATR (the ATR filter).

    Confidence: the break distance in ATR units, capped at ``full_break_atr``:
    ``min(1, (close - prior high) / ATR / full_break_atr)``.
    """

    name: str = "breakout"
    horizon: int = 10
    reach: ClassVar[int] = 1  # the prior bar's channel
    channel: int = 20
    min_break_atr: float = 0.1
    full_break_atr: float = 1.0

    KEYS = ("breakout.warmup", "breakout.up", "breakout.down", "breakout.marginal", "breakout.inside")

    def batch(self, bars: Bars, ind: IndicatorSet | None = None) -> VoteBatch:
        ind = _ind(bars, ind)
        c = bars.close
        upper, lower = ind.donchian(self.channel)
        hi, lo = shift(upper, 1), shift(lower, 1)  # channel of the PRIOR bars
        a = ind.atr(ATR_PERIOD)
        above = _safe_div(c - hi, a)
        below = _safe_div(lo - c, a)
        direction = np.where(above >= self.min_break_atr, 1, np.where(below >= self.min_break_atr, -1, 0))
        conf = np.where(direction > 0, above, below) / self.full_break_atr
        warm = np.isnan(above) | np.isnan(below)
        key = _keyed(4, (warm, 0), (direction > 0, 1), (direction < 0, 2), ((above > 0) | (below > 0), 3))
        values = {"channel_high": hi, "channel_low": lo, "atr": a, "break_atr": np.fmax(above, below)}
        return _pack(self, bars, ind, direction, conf, key, self.KEYS, values)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


@dataclass(frozen=True, slots=True)
class LearnerAgent(Agent):
    """Walk-forward L2-regularized logistic regression predicting whether the
    close ``horizon`` bars ahead is above today's close.

    Features (all causal, mostly in ATR units): 1/5/20-bar returns, RSI,
    distance to SMA20 and SMA50, MACD histogram, Bollinger %b, +DI - -DI, ADX,
    log of ATR relative to its 50-bar mean; clipped to +/-10. The ridge penalty
    acts on standardized coefficients (the training window's own mean and
    deviation), i.e. ``l2 * var_j * coef_j^2`` on the raw ones.

    Training: the model used at bar ``t`` was fitted at the latest refit bar
    ``r <= t`` (refits every ``refit_every`` bars, counted from the first bar
    with ``min_train`` labelled samples) on samples ``i`` with ``i + horizon <= r``
    -- labels whose outcome bar is already closed -- at most ``train_window`` of
    them. Nothing at or after ``r - horizon + 1`` enters the labels.

    Fitting: Bohning's bounded-Hessian iteration (the logistic Hessian never
    exceeds X'X/4, so one fixed matrix, inverted once per fit, gives monotone
    steps); with predictions near 0.5 it converges fast -- 20 iterations land
    within ~1e-11 (in probability) of the optimum on EURUSD H1 with 1000-bar
    windows, ~1e-6 on 500-bar windows.

    Confidence: the model's predicted probability of the voted direction;
    it votes only when that probability is at least ``0.5 + edge``.
    """

    name: str = "learner"
    horizon: int = 5
    train_window: int = 1000
    min_train: int = 150
    refit_every: int = 25
    l2: float = 1.0
    iterations: int = 20
    edge: float = 0.02

    KEYS = ("learner.warmup", "learner.up", "learner.down", "learner.unsure")
    FEATURES = (
        "ret_1",
        "ret_5",
        "ret_20",
        "rsi",
        "dist_sma20",
        "dist_sma50",
        "macd_hist",
        "percent_b",
        "di_spread",
        "adx",
        "atr_ratio",
    )

    @staticmethod
    def features(bars: Bars, ind: IndicatorSet | None = None) -> np.ndarray:
        """Feature tensor shaped (..., bars, features); NaN during warmup."""
        ind = _ind(bars, ind)
        c = bars.close
        a = ind.atr(ATR_PERIOD)
        _, upper, lower = ind.bollinger(20, 2.0)
        adx, pdi, mdi = ind.adx(14)
        atr_mean = sma(a, 50)
        cols = [
            _safe_div(c - shift(c, 1), a),
            _safe_div(c - shift(c, 5), a),
            _safe_div(c - shift(c, 20), a),
            (ind.rsi(14) - 50.0) / 50.0,
            _safe_div(c - ind.sma(20), a),
            _safe_div(c - ind.sma(50), a),
            _safe_div(ind.macd(12, 26, 9)[2], a),
            _safe_div(c - lower, upper - lower) - 0.5,
            (pdi - mdi) / 100.0,
            adx / 100.0,
            np.log(_safe_div(a, atr_mean)),
        ]
        # bound the few unbounded ones (ATR-unit distances) so outliers cannot lever the fit
        feats = np.stack(cols, axis=-1)
        return np.clip(feats, -FEATURE_CLIP, FEATURE_CLIP, out=feats)

    def _schedule(self, f0: int) -> int:
        """First refit bar: the earliest bar with ``min_train`` labelled samples."""
        return f0 + self.horizon + self.min_train - 1

    def _train(
        self, feats: np.ndarray, close: np.ndarray, f0: int, refits: np.ndarray,
        finite: np.ndarray | None = None, ok: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fit one model per refit bar. Returns (coef with intercept first, n_train).

        ``finite`` (``np.isfinite(feats)``) and ``ok`` (its ``all`` over the features) when the caller has them.
        """
        h = self.horizon
        n, d = close.shape[-1], feats.shape[-1]
        # window slots: never longer than the history the latest refit can use
        w_len = int(max(1, min(self.train_window, int(refits.max()) - h - f0 + 1)))
        if finite is None:
            finite = np.isfinite(feats)
        if ok is None:
            ok = finite.all(axis=-1)  # (..., n)
        fut = np.full(close.shape, np.nan)
        fut[..., : n - h] = close[..., h:]
        y_all = (fut > close).astype(np.float64)
        lab_ok = np.isfinite(fut) & (fut != close) & ok  # ties carry no label
        # sample grid (refits, window): i = r - h - w_len + 1 ... r - h, i.e. i + h <= r
        starts = refits - h - w_len + 1
        idx = starts[:, None] + np.arange(w_len)[None, :]
        idx_c = np.clip(idx, 0, n - 1)
        sw = (lab_ok[..., idx_c] & (idx >= f0)).astype(np.float64)  # (..., R, W)
        y = y_all[..., idx_c]
        lead = sw.shape[:-1]  # (..., R)
        clean = np.where(finite, feats, 0.0).reshape((-1, n, d))
        before = idx < 0  # window slots before the first bar: zero features
        flat_sw = sw.reshape((-1, w_len))
        flat_y = y.reshape((-1, w_len))
        items, r_count = flat_sw.shape[0], refits.size
        beta = np.empty((items, d + 1))
        cnt = np.empty(items)
        # every (row, refit) model is fitted on its own, in blocks whose design matrices stay in the CPU
        # cache through all the iterations (the same arithmetic as one pass over all of them, ~1.4x faster)
        step = max(1, _FIT_BLOCK_BYTES // (w_len * (d + 1) * 8))
        for a in range(0, items, step):
            item = np.arange(a, min(items, a + step))
            row, j = item // r_count, item % r_count
            # design matrices with an intercept column over each refit's window
            zx = np.empty((item.size, w_len, d + 1))
            zx[..., 0] = 1.0
            zx[..., 1:] = clean[row[:, None], idx_c[j], :]
            if before.any():
                zx[before[j], 1:] = 0.0
            beta[a : a + step], cnt[a : a + step] = self._fit(zx, flat_sw[a : a + step], flat_y[a : a + step])
        return beta.reshape(lead + (d + 1,)), cnt.reshape(lead)

    def _fit(self, zx: np.ndarray, sw: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Models for a stack of design matrices (k, window, 1 + features) with 0/1 sample weights and labels."""
        d = zx.shape[-1] - 1
        zt = np.swapaxes(zx, -1, -2)
        zw = zx * sw[..., None]  # the weighted samples (weights are 0 or 1: exact)
        gram = zt @ zw  # weighted moments: [[n, sum x'], [sum x, sum x x']]
        cnt = gram[..., 0, 0]
        den = np.maximum(cnt, 1.0)[..., None]
        mu = gram[..., 0, 1:] / den
        var = np.maximum(np.diagonal(gram, axis1=-2, axis2=-1)[..., 1:] / den - mu * mu, 1e-18)
        # ridge on standardized coefficients = penalty l2 * var_j on the raw ones
        pen = np.concatenate([np.full(var.shape[:-1] + (1,), 1e-9), self.l2 * var], axis=-1)
        # Bohning's bound: p(1-p) <= 1/4, so X'WX/4 + pen dominates every Hessian;
        # one inverse serves all iterations and each step cannot overshoot.
        inv = np.linalg.inv(0.25 * gram + pen[..., None, :] * np.eye(d + 1))
        pen_col = pen[..., :, None]
        zwt = np.swapaxes(zw, -1, -2)
        beta = np.zeros(zx.shape[:-2] + (d + 1, 1))
        for _ in range(self.iterations):
            p = _sigmoid((zx @ beta)[..., 0])
            grad = zwt @ (p - y)[..., None] + pen_col * beta  # = X' W (p - y): W is 0/1, so the same sums
            beta = beta - inv @ grad
        return beta[..., 0], cnt

    def _predict(
        self, bars: Bars, ind: IndicatorSet | None, targets: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, IndicatorSet]:
        """P(up) at the target bars plus training size and model age."""
        ind = _ind(bars, ind)
        feats = self.features(bars, ind)
        c = bars.close
        n = c.shape[-1]
        finite = np.isfinite(feats)
        ok = finite.all(axis=-1)  # (..., bars): every feature known
        ready = np.flatnonzero(ok.reshape(-1, n).all(axis=0))
        f0 = int(ready[0]) if ready.size else n  # as first_valid over the rows
        r0 = self._schedule(f0)
        lead = c.shape[:-1]
        p = np.full(lead + (targets.size,), np.nan)
        cnt_t = np.zeros(lead + (targets.size,))
        age = np.full(targets.size, -1.0)
        live = targets >= r0
        if r0 < n and live.any():
            slot = (targets[live] - r0) // self.refit_every
            used = np.unique(slot)
            refits = r0 + used * self.refit_every
            beta, cnt = self._train(feats, c, f0, refits, finite, ok)
            j = np.searchsorted(used, slot)
            ft = feats[..., targets[live], :]
            eta = beta[..., j, 0] + np.einsum("...td,...td->...t", ft, beta[..., j, 1:])
            p[..., live] = _sigmoid(eta)
            cnt_t[..., live] = cnt[..., j]
            age[live] = targets[live] - refits[j]
        return p, cnt_t, np.broadcast_to(age, p.shape), feats, ind

    def _votes(self, bars: Bars, ind: IndicatorSet | None, targets: np.ndarray) -> VoteBatch:
        p, cnt, age, _, ind = self._predict(bars, ind, targets)
        up = p >= 0.5 + self.edge
        down = p <= 0.5 - self.edge
        direction = np.where(up, 1, np.where(down, -1, 0))
        conf = np.where(direction > 0, p, 1.0 - p)
        key = _keyed(3, (np.isnan(p), 0), (direction > 0, 1), (direction < 0, 2))
        values = {"p_up": p, "train_samples": cnt, "model_age": age}
        sub = _Subset(bars, targets)
        sub_ind = _SubsetIndicators(ind, targets)
        return _pack(self, sub, sub_ind, direction, conf, key, self.KEYS, values)  # type: ignore[arg-type]

    def batch(self, bars: Bars, ind: IndicatorSet | None = None) -> VoteBatch:
        return self._votes(bars, ind, np.arange(bars.close.shape[-1]))

    def last(self, bars: Bars, ind: IndicatorSet | None = None) -> VoteBatch:
        # One fit (the refit in force at the last bar) instead of the whole walk.
        return self._votes(bars, ind, np.array([bars.close.shape[-1] - 1]))


@dataclass(frozen=True, slots=True)
class _TailBars:
    """The last bars of a ``Bars`` (views, no copies)."""

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    @classmethod
    def of(cls, bars: Bars, k: int) -> _TailBars:
        return cls(bars.time[..., -k:], bars.open[..., -k:], bars.high[..., -k:], bars.low[..., -k:],
                   bars.close[..., -k:], bars.volume[..., -k:])


class _TailIndicators(IndicatorSet):
    """An ``IndicatorSet``'s values at the last ``k`` bars: computed (and memoized) over the whole history,
    then sliced, so every value is exactly the full set's."""

    def __init__(self, ind: IndicatorSet, bars: _TailBars, k: int) -> None:
        super().__init__(bars)
        self.ind = ind
        self.k = k

    def _t(self, x: np.ndarray) -> np.ndarray:
        return x[..., -self.k :]

    def sma(self, n: int) -> np.ndarray:
        return self._t(self.ind.sma(n))

    def ema(self, n: int) -> np.ndarray:
        return self._t(self.ind.ema(n))

    def rsi(self, n: int = 14) -> np.ndarray:
        return self._t(self.ind.rsi(n))

    def atr(self, n: int = 14) -> np.ndarray:
        return self._t(self.ind.atr(n))

    def roc(self, n: int = 10) -> np.ndarray:
        return self._t(self.ind.roc(n))

    def adx(self, n: int = 14) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a, p, m = self.ind.adx(n)
        return self._t(a), self._t(p), self._t(m)

    def bollinger(self, n: int = 20, k: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mid, up, lo = self.ind.bollinger(n, k)
        return self._t(mid), self._t(up), self._t(lo)

    def macd(self, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[np.ndarray, ...]:
        return tuple(self._t(x) for x in self.ind.macd(fast, slow, signal))

    def donchian(self, n: int = 20) -> tuple[np.ndarray, np.ndarray]:
        up, lo = self.ind.donchian(n)
        return self._t(up), self._t(lo)


@dataclass(frozen=True, slots=True)
class _Subset:
    """Bars restricted to some time indices (what ``_pack`` reads)."""

    bars: Bars
    targets: np.ndarray

    @property
    def time(self) -> np.ndarray:
        return self.bars.time[..., self.targets]

    @property
    def close(self) -> np.ndarray:
        return self.bars.close[..., self.targets]


@dataclass(frozen=True, slots=True)
class _SubsetIndicators:
    ind: IndicatorSet
    targets: np.ndarray

    def atr(self, n: int) -> np.ndarray:
        return self.ind.atr(n)[..., self.targets]


def default_agents() -> tuple[Agent, ...]:
    """The standard line-up, in display order."""
    return (TrendAgent(), MeanReversionAgent(), MomentumAgent(), BreakoutAgent(), LearnerAgent())
