"""Per-bar pure-Python twins of the vectorized code: the executable specification.

Slow and obvious on purpose: plain lists and loops, one bar at a time, each
value computed only from earlier values. The unit tests hold ``indicators``
and the agents to these; ``bench/agents.py`` times them against the
vectorized sweep. Missing values are ``nan``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from domain.agents.agents import (
    ATR_PERIOD,
    FEATURE_CLIP,
    BreakoutAgent,
    LearnerAgent,
    MeanReversionAgent,
    MomentumAgent,
    TrendAgent,
)
from domain.agents.consensus import ConsensusConfig

NAN = math.nan
Vec = list[float]


def _first_finite(x: Sequence[float]) -> int:
    for i, v in enumerate(x):
        if math.isfinite(v):
            return i
    return len(x)


def smooth(x: Sequence[float], alpha: float, period: int, start: int | None = None) -> Vec:
    s0 = _first_finite(x) if start is None else start
    out = [NAN] * len(x)
    seed = s0 + period - 1
    if seed >= len(x):
        return out
    y = sum(x[s0 : seed + 1]) / period
    out[seed] = y
    for i in range(seed + 1, len(x)):
        y = (1.0 - alpha) * y + alpha * x[i]
        out[i] = y
    return out


def sma(x: Sequence[float], n: int) -> Vec:
    s0 = _first_finite(x)
    out = [NAN] * len(x)
    for i in range(s0 + n - 1, len(x)):
        out[i] = sum(x[i - n + 1 : i + 1]) / n
    return out


def ema(x: Sequence[float], n: int) -> Vec:
    return smooth(x, 2.0 / (n + 1.0), n)


def rsi(close: Sequence[float], n: int = 14) -> Vec:
    gain, loss = [NAN], [NAN]
    for i in range(1, len(close)):
        d = close[i] - close[i - 1]
        gain.append(d if d > 0 else 0.0)
        loss.append(-d if d < 0 else 0.0)
    ag, al = smooth(gain, 1.0 / n, n, 1), smooth(loss, 1.0 / n, n, 1)
    out = []
    for g, lo in zip(ag, al):
        if math.isnan(g):
            out.append(NAN)
        elif lo == 0.0:
            out.append(100.0 if g > 0 else 50.0)
        else:
            out.append(100.0 - 100.0 / (1.0 + g / lo))
    return out


def true_range(high: Sequence[float], low: Sequence[float], close: Sequence[float]) -> Vec:
    out = []
    for i in range(len(close)):
        tr = high[i] - low[i]
        if i > 0:
            tr = max(tr, abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
        out.append(tr)
    return out


def atr(high: Sequence[float], low: Sequence[float], close: Sequence[float], n: int = 14) -> Vec:
    return smooth(true_range(high, low, close), 1.0 / n, n, 0)


def adx(high: Sequence[float], low: Sequence[float], close: Sequence[float], n: int = 14) -> tuple[Vec, Vec, Vec]:
    tr = true_range(high, low, close)
    pdm, mdm, trs = [NAN], [NAN], [NAN]
    for i in range(1, len(close)):
        up, dn = high[i] - high[i - 1], low[i - 1] - low[i]
        pdm.append(up if up > dn and up > 0 else 0.0)
        mdm.append(dn if dn > up and dn > 0 else 0.0)
        trs.append(tr[i])
    s_tr, s_p, s_m = (smooth(v, 1.0 / n, n, 1) for v in (trs, pdm, mdm))
    pdi, mdi, dx = [], [], []
    for t, p, m in zip(s_tr, s_p, s_m):
        if math.isnan(t):
            pdi.append(NAN), mdi.append(NAN), dx.append(NAN)
            continue
        a = 100.0 * p / t if t > 0 else 0.0
        b = 100.0 * m / t if t > 0 else 0.0
        pdi.append(a)
        mdi.append(b)
        dx.append(100.0 * abs(a - b) / (a + b) if a + b > 0 else 0.0)
    return smooth(dx, 1.0 / n, n, n), pdi, mdi


def bollinger(close: Sequence[float], n: int = 20, k: float = 2.0) -> tuple[Vec, Vec, Vec]:
    mid, up, dn = [NAN] * len(close), [NAN] * len(close), [NAN] * len(close)
    for i in range(n - 1, len(close)):
        w = close[i - n + 1 : i + 1]
        m = sum(w) / n
        sd = math.sqrt(sum((v - m) ** 2 for v in w) / n)
        mid[i], up[i], dn[i] = m, m + k * sd, m - k * sd
    return mid, up, dn


def macd(close: Sequence[float], fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[Vec, Vec, Vec]:
    line = [a - b for a, b in zip(ema(close, fast), ema(close, slow))]
    sig = ema(line, signal)
    return line, sig, [a - b for a, b in zip(line, sig)]


def roc(close: Sequence[float], n: int = 10) -> Vec:
    return [NAN] * min(n, len(close)) + [100.0 * (close[i] / close[i - n] - 1.0) for i in range(n, len(close))]


def donchian(high: Sequence[float], low: Sequence[float], n: int = 20) -> tuple[Vec, Vec]:
    up, dn = [NAN] * len(high), [NAN] * len(high)
    for i in range(n - 1, len(high)):
        up[i] = max(high[i - n + 1 : i + 1])
        dn[i] = min(low[i - n + 1 : i + 1])
    return up, dn


def percentile_rank(x: Sequence[float], lookback: int) -> Vec:
    out = [NAN] * len(x)
    for i in range(lookback, len(x)):
        prev = x[i - lookback : i]
        if math.isfinite(x[i]) and all(math.isfinite(v) for v in prev):
            out[i] = sum(1 for v in prev if v < x[i]) / lookback
    return out


# --- agents at one bar -------------------------------------------------------


Memo = dict[tuple[object, ...], object]


def _m(memo: Memo | None, key: tuple[object, ...], make: Callable[[], Any]) -> Any:
    """Share an indicator between agents at the same bar (as the vectorized code does)."""
    if memo is None:
        return make()
    if key not in memo:
        memo[key] = make()
    return memo[key]


def _clip(x: float) -> float:
    return min(1.0, max(0.0, x))


def _gt(a: float, b: float) -> bool:
    return math.isfinite(a) and math.isfinite(b) and a > b


def trend_at(agent: TrendAgent, h: Vec, lo: Vec, c: Vec, i: int, memo: Memo | None = None) -> tuple[int, float]:
    fast = _m(memo, ("ema", agent.fast), lambda: ema(c, agent.fast))
    slow = _m(memo, ("ema", agent.slow), lambda: ema(c, agent.slow))
    a, p, m = _m(memo, ("adx", agent.adx_period), lambda: adx(h, lo, c, agent.adx_period))
    strong = math.isfinite(a[i]) and a[i] >= agent.adx_min
    if strong and _gt(c[i], fast[i]) and _gt(fast[i], slow[i]) and _gt(p[i], m[i]):
        return 1, _clip(a[i] / agent.adx_full)
    if strong and _gt(fast[i], c[i]) and _gt(slow[i], fast[i]) and _gt(m[i], p[i]):
        return -1, _clip(a[i] / agent.adx_full)
    return 0, 0.0


def reversion_at(
    agent: MeanReversionAgent, h: Vec, lo: Vec, c: Vec, i: int, memo: Memo | None = None
) -> tuple[int, float]:
    r = _m(memo, ("rsi", agent.rsi_period), lambda: rsi(c, agent.rsi_period))[i]
    _, up, dn = _m(memo, ("bb", agent.bb_period, agent.bb_k), lambda: bollinger(c, agent.bb_period, agent.bb_k))
    a = _m(memo, ("adx", agent.adx_period), lambda: adx(h, lo, c, agent.adx_period))[0][i]
    if not (math.isfinite(r) and math.isfinite(up[i]) and math.isfinite(a)) or a >= agent.adx_max:
        return 0, 0.0
    width = up[i] - dn[i]
    if r <= agent.rsi_low and c[i] < dn[i]:
        depth = (dn[i] - c[i]) / width if width > 0 else 0.0
        return 1, 0.5 * _clip((agent.rsi_low - r) / agent.rsi_low) + 0.5 * _clip(depth)
    if r >= agent.rsi_high and c[i] > up[i]:
        depth = (c[i] - up[i]) / width if width > 0 else 0.0
        return -1, 0.5 * _clip((r - agent.rsi_high) / (100.0 - agent.rsi_high)) + 0.5 * _clip(depth)
    return 0, 0.0


def momentum_at(agent: MomentumAgent, h: Vec, lo: Vec, c: Vec, i: int, memo: Memo | None = None) -> tuple[int, float]:
    line, _, hist = _m(memo, ("macd", agent.fast, agent.slow, agent.signal),
                       lambda: macd(c, agent.fast, agent.slow, agent.signal))
    rc = _m(memo, ("roc", agent.roc_period), lambda: roc(c, agent.roc_period))[i]
    a = _m(memo, ("atr", ATR_PERIOD), lambda: atr(h, lo, c, ATR_PERIOD))[i]
    if not (math.isfinite(hist[i]) and math.isfinite(rc) and a > 0):
        return 0, 0.0
    conf = _clip(abs(hist[i]) / a / agent.hist_full_atr)
    if hist[i] > 0 and line[i] > 0 and rc > 0:
        return 1, conf
    if hist[i] < 0 and line[i] < 0 and rc < 0:
        return -1, conf
    return 0, 0.0


def breakout_at(agent: BreakoutAgent, h: Vec, lo: Vec, c: Vec, i: int, memo: Memo | None = None) -> tuple[int, float]:
    up, dn = _m(memo, ("donchian", agent.channel), lambda: donchian(h, lo, agent.channel))
    a = _m(memo, ("atr", ATR_PERIOD), lambda: atr(h, lo, c, ATR_PERIOD))[i]
    if i < 1 or not (math.isfinite(up[i - 1]) and a > 0):
        return 0, 0.0
    above, below = (c[i] - up[i - 1]) / a, (dn[i - 1] - c[i]) / a
    if above >= agent.min_break_atr:
        return 1, _clip(above / agent.full_break_atr)
    if below >= agent.min_break_atr:
        return -1, _clip(below / agent.full_break_atr)
    return 0, 0.0


def _div(a: float, b: float) -> float:
    return a / b if math.isfinite(a) and math.isfinite(b) and b > 0 else NAN


def learner_features(h: Vec, lo: Vec, c: Vec, memo: Memo | None = None) -> list[Vec]:
    n = len(c)
    a = _m(memo, ("atr", ATR_PERIOD), lambda: atr(h, lo, c, ATR_PERIOD))
    _, up, dn = _m(memo, ("bb", 20, 2.0), lambda: bollinger(c, 20, 2.0))
    ax, p, m = _m(memo, ("adx", 14), lambda: adx(h, lo, c, 14))
    a_mean = sma(a, 50)
    r = _m(memo, ("rsi", 14), lambda: rsi(c, 14))
    s20, s50 = sma(c, 20), sma(c, 50)
    hist = _m(memo, ("macd", 12, 26, 9), lambda: macd(c, 12, 26, 9))[2]
    rows = []
    for i in range(n):
        ratio = _div(a[i], a_mean[i])
        rows.append(
            [
                _div(c[i] - c[i - 1], a[i]) if i >= 1 else NAN,
                _div(c[i] - c[i - 5], a[i]) if i >= 5 else NAN,
                _div(c[i] - c[i - 20], a[i]) if i >= 20 else NAN,
                (r[i] - 50.0) / 50.0,
                _div(c[i] - s20[i], a[i]),
                _div(c[i] - s50[i], a[i]),
                _div(hist[i], a[i]),
                _div(c[i] - dn[i], up[i] - dn[i]) - 0.5,
                (p[i] - m[i]) / 100.0,
                ax[i] / 100.0,
                math.log(ratio) if math.isfinite(ratio) and ratio > 0 else NAN,
            ]
        )
    return [[min(FEATURE_CLIP, max(-FEATURE_CLIP, v)) if math.isfinite(v) else NAN for v in r] for r in rows]


def _solve(a: list[Vec], b: Vec) -> Vec:
    """Gaussian elimination with partial pivoting."""
    k = len(b)
    m = [row[:] + [b[i]] for i, row in enumerate(a)]
    for col in range(k):
        piv = max(range(col, k), key=lambda r: abs(m[r][col]))
        m[col], m[piv] = m[piv], m[col]
        for r in range(col + 1, k):
            f = m[r][col] / m[col][col]
            for cc in range(col, k + 1):
                m[r][cc] -= f * m[col][cc]
    x = [0.0] * k
    for r in range(k - 1, -1, -1):
        x[r] = (m[r][k] - sum(m[r][cc] * x[cc] for cc in range(r + 1, k))) / m[r][r]
    return x


def _sig(x: float) -> float:
    return 0.5 * (1.0 + math.tanh(0.5 * x))


def learner_at(agent: LearnerAgent, h: Vec, lo: Vec, c: Vec, t: int, memo: Memo | None = None) -> tuple[int, float]:
    """The learner's vote at bar t: fit at the refit bar in force, predict t."""
    feats = learner_features(h, lo, c, memo)
    ok = [all(math.isfinite(v) for v in row) for row in feats]
    f0 = next((i for i, v in enumerate(ok) if v), len(c))
    r0 = f0 + agent.horizon + agent.min_train - 1
    if t < r0 or not ok[t]:
        return 0, 0.0
    r = r0 + (t - r0) // agent.refit_every * agent.refit_every
    hz = agent.horizon
    xs, ys = [], []
    for i in range(max(f0, r - hz - agent.train_window + 1), r - hz + 1):
        if ok[i] and c[i + hz] != c[i]:
            xs.append(feats[i])
            ys.append(1.0 if c[i + hz] > c[i] else 0.0)
    d, cnt = len(feats[0]), len(xs)
    if cnt == 0:
        return 0, 0.0
    mu = [sum(x[j] for x in xs) / cnt for j in range(d)]
    var = [max(sum((x[j] - mu[j]) ** 2 for x in xs) / cnt, 1e-18) for j in range(d)]
    zs = [[1.0] + x for x in xs]
    k = d + 1
    pen = [1e-9] + [agent.l2 * v for v in var]  # ridge on standardized coefficients
    bound = [[pen[i] if i == j else 0.0 for j in range(k)] for i in range(k)]  # X'X/4 + pen
    for zi in zs:
        for i in range(k):
            row, wi = bound[i], 0.25 * zi[i]
            for j in range(k):
                row[j] += wi * zi[j]
    beta = [0.0] * k
    for _ in range(agent.iterations):
        grad = [pen[j] * beta[j] for j in range(k)]
        for zi, yi in zip(zs, ys):
            g = _sig(sum(a * b for a, b in zip(zi, beta))) - yi
            for i in range(k):
                grad[i] += zi[i] * g
        step = _solve(bound, grad)
        beta = [b - s for b, s in zip(beta, step)]
    p = _sig(sum(a * b for a, b in zip([1.0] + feats[t], beta)))
    if p >= 0.5 + agent.edge:
        return 1, p
    if p <= 0.5 - agent.edge:
        return -1, 1.0 - p
    return 0, 0.0


def risk_veto_at(
    lookback: int, veto_percentile: float, h: Vec, lo: Vec, c: Vec, i: int, memo: Memo | None = None
) -> bool:
    a = _m(memo, ("atr", ATR_PERIOD), lambda: atr(h, lo, c, ATR_PERIOD))
    if i < lookback:
        return True
    rel = [a[j] / c[j] for j in range(i - lookback, i + 1)]
    if not all(math.isfinite(v) for v in rel):
        return True
    pct = sum(1 for v in rel[:-1] if v < rel[-1]) / lookback
    return pct >= veto_percentile


def consensus(
    votes: Sequence[tuple[int, float]],
    hit_means: Sequence[float],
    horizons: Sequence[int],
    veto: bool,
    config: ConsensusConfig = ConsensusConfig(),
) -> tuple[int, float, float]:
    """(direction, confidence, agreement) by the rule in ``consensus.py``."""
    weights = []
    for m in hit_means:
        m = min(1.0 - 1e-9, max(1e-9, m))
        weights.append(max(0.0, math.log(m / (1.0 - m))))
    raw = sum(1 for d, _ in votes if d != 0)
    active = [(d, w * cf, m) for (d, cf), w, m in zip(votes, weights, hit_means) if d != 0 and w > 0]
    score = sum(d * p for d, p, _ in active)
    total = sum(p for _, p, _ in active)
    lean = 1 if score > 0 else -1 if score < 0 else 0
    back = [(p, m) for d, p, m in active if d == lean and lean != 0]
    back_sum = sum(p for p, _ in back)
    agreement = back_sum / total if total > 0 else 0.0
    conf = sum(p * m for p, m in back) / back_sum if back_sum > 0 else 0.0
    ok = raw >= config.quorum and len(active) >= config.quorum and total > 0 and lean != 0
    ok = ok and agreement >= config.agreement and not veto
    return (lean, conf, agreement) if ok else (0, 0.0, agreement)
