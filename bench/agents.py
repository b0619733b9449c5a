"""Agents benchmark: one full sweep of votes + consensus, vectorized vs pure Python.

Sweep: 50 symbols x 6 timeframes = 300 windows of 500 seeded synthetic bars,
stacked into (300, 500) arrays; every agent votes at the last bar of every
window, the Risk agent judges volatility, and the consensus combines them with
seeded track records. Beside it, in the same run, a bare numpy sweep of the
same indicators (EMA, SMA, RSI, ATR, ADX/DI, Bollinger, MACD, ROC, Donchian:
each recursion a plain loop over the bars, all 300 windows at once; no agents,
no learner, no consensus), checked against the agents' own values at the last
bar. The same sweep is then computed bar by bar in pure Python
(``domain.agents.reference``); the two must agree, and both times are printed
with their ratio.

Then a walk-forward backtest on the real EURUSD H1 bars prints each agent's
and the consensus's hit rate with its 95 % CI beside the random-direction
baseline.

Run: ``python bench/agents.py [--repeat N] [--ref-windows N]``. It prints
figures and never fails on time.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from domain.market.sim import packaged_history  # noqa: E402
from tests import agents_reference as ref  # noqa: E402
from domain.agents.agents import (  # noqa: E402
    BreakoutAgent,
    LearnerAgent,
    MeanReversionAgent,
    MomentumAgent,
    TrendAgent,
    default_agents,
)
from domain.agents.backtest import BacktestConfig, default_cost, format_report, run_backtest  # noqa: E402
from domain.agents.consensus import combine, log_odds_weight  # noqa: E402
from domain.agents.indicators import IndicatorSet, sma  # noqa: E402
from domain.agents.risk import RiskAgent  # noqa: E402
from domain.agents.series import Panel, Series  # noqa: E402
from domain.market.models import Timeframe  # noqa: E402

SYMBOLS, BARS = 50, 500
TIMEFRAMES = tuple(Timeframe)
CSV = packaged_history()


def synthetic_panel(seed: int = 42) -> Panel:
    """Seeded random-walk windows with volatility clustering, one row per (symbol, tf)."""
    rng = np.random.default_rng(seed)
    rows = SYMBOLS * len(TIMEFRAMES)
    price0 = np.repeat(rng.choice([1.1, 0.9, 150.0, 1900.0, 30000.0], SYMBOLS), len(TIMEFRAMES))
    tf_sec = np.tile([tf.seconds for tf in TIMEFRAMES], SYMBOLS)
    base_vol = 0.0012 * np.sqrt(tf_sec / 3600.0) * rng.uniform(0.5, 2.0, rows)
    regime = np.exp(np.cumsum(rng.normal(0, 0.05, (rows, BARS)), axis=1) * 0.5)
    ret = rng.standard_t(4, (rows, BARS)) / math.sqrt(2) * base_vol[:, None] * regime
    close = price0[:, None] * np.exp(np.cumsum(ret, axis=1))
    open_ = np.concatenate([price0[:, None], close[:, :-1]], axis=1)
    wick = np.abs(rng.normal(0, 1, (2, rows, BARS))) * base_vol[:, None] * close * 0.5
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    time_ = 1_600_000_000 + tf_sec[:, None] * np.arange(BARS)[None, :]
    volume = rng.integers(100, 5000, (rows, BARS)).astype(np.float64)
    return Panel(
        time_.astype(np.int64), open_, high, low, close, volume,
        tuple(f"SYM{i // len(TIMEFRAMES):02d}" for i in range(rows)),
        tuple(TIMEFRAMES[i % len(TIMEFRAMES)] for i in range(rows)),
    )


def seeded_hit_means(rows: int, agents: int, seed: int = 7) -> np.ndarray:
    """Track records as if each agent had resolved 40 signals at a 45-60 % hit rate."""
    rng = np.random.default_rng(seed)
    hits = rng.binomial(40, rng.uniform(0.45, 0.60, (rows, agents)))
    return (2.0 + hits) / (4.0 + 40)


def vectorized_sweep(panel: Panel, hit_means: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(directions, confidences) of every agent at every window's last bar, and the consensus."""
    agents = default_agents()
    ind = IndicatorSet(panel)
    lasts = [a.last(panel, ind) for a in agents]
    d = np.stack([b.direction[:, 0] for b in lasts], axis=1)
    c = np.stack([b.confidence[:, 0] for b in lasts], axis=1)
    veto = RiskAgent().last(panel, ind).veto[:, 0]
    hz = np.array([a.horizon for a in agents], dtype=np.float64)
    out = combine(d, c, log_odds_weight(hit_means), hit_means, hz, veto)
    return d, c, out.direction


def _ewm(x: np.ndarray, alpha: float, n: int, start: int) -> np.ndarray:
    """y_t = (1 - alpha) y_(t-1) + alpha x_t, seeded with the mean of x[start : start + n]; one step per bar."""
    out = np.full(x.shape, np.nan)
    seed = start + n - 1
    y = x[:, start : seed + 1].mean(axis=1)
    out[:, seed] = y
    w = 1.0 - alpha
    for t in range(seed + 1, x.shape[1]):
        y = w * y + alpha * x[:, t]
        out[:, t] = y
    return out


def _rolling(x: np.ndarray, n: int, fn: str) -> np.ndarray:
    out = np.full(x.shape, np.nan)
    out[:, n - 1 :] = getattr(sliding_window_view(x, n, axis=1), fn)(axis=-1)
    return out


def bare_numpy_sweep(panel: Panel) -> dict[str, np.ndarray]:
    """The indicators the agents read, in plain numpy; their values at every window's last bar."""
    h, lo, c = panel.high, panel.low, panel.close
    n = 14
    prev = c[:, :-1]
    tr = h - lo
    tr[:, 1:] = np.maximum(tr[:, 1:], np.maximum(np.abs(h[:, 1:] - prev), np.abs(lo[:, 1:] - prev)))
    d = np.zeros(c.shape)
    d[:, 1:] = np.diff(c, axis=1)
    avg_gain = _ewm(np.maximum(d, 0.0), 1.0 / n, n, 1)
    avg_loss = _ewm(np.maximum(-d, 0.0), 1.0 / n, n, 1)
    up = np.zeros(c.shape)
    dn = np.zeros(c.shape)
    up[:, 1:] = h[:, 1:] - h[:, :-1]
    dn[:, 1:] = lo[:, :-1] - lo[:, 1:]
    s_tr = _ewm(tr, 1.0 / n, n, 1)
    pdi = 100.0 * _ewm(np.where((up > dn) & (up > 0), up, 0.0), 1.0 / n, n, 1) / s_tr
    mdi = 100.0 * _ewm(np.where((dn > up) & (dn > 0), dn, 0.0), 1.0 / n, n, 1) / s_tr
    dx = np.nan_to_num(100.0 * np.abs(pdi - mdi) / (pdi + mdi))
    ema12, ema26 = _ewm(c, 2.0 / 13, 12, 0), _ewm(c, 2.0 / 27, 26, 0)
    line = ema12 - ema26
    mid, sd = _rolling(c, 20, "mean"), _rolling(c, 20, "std")
    atr = _ewm(tr, 1.0 / n, n, 0)
    out = {
        "ema20": _ewm(c, 2.0 / 21, 20, 0),
        "ema50": _ewm(c, 2.0 / 51, 50, 0),
        "sma20": mid,
        "sma50": _rolling(c, 50, "mean"),
        "rsi": 100.0 - 100.0 / (1.0 + avg_gain / avg_loss),
        "atr": atr,
        "atr_sma50": _rolling(atr[:, n - 1 :], 50, "mean"),
        "adx": _ewm(dx, 1.0 / n, n, n),
        "plus_di": pdi,
        "minus_di": mdi,
        "bb_upper": mid + 2.0 * sd,
        "bb_lower": mid - 2.0 * sd,
        "macd": line,
        "macd_signal": _ewm(line, 2.0 / 10, 9, 25),
        "roc": 100.0 * (c[:, -1] / c[:, -11] - 1.0)[:, None],
        "donchian_high": _rolling(h, 20, "max"),
        "donchian_low": _rolling(lo, 20, "min"),
    }
    return {k: v[:, -1] for k, v in out.items()}


def agents_indicators(panel: Panel) -> dict[str, np.ndarray]:
    """The same values from the agents' IndicatorSet (to check the bare sweep computes the same thing)."""
    ind = IndicatorSet(panel)
    adx, pdi, mdi = ind.adx(14)
    _, upper, lower = ind.bollinger(20, 2.0)
    line, sig, _ = ind.macd(12, 26, 9)
    dc_hi, dc_lo = ind.donchian(20)
    out = {
        "ema20": ind.ema(20), "ema50": ind.ema(50), "sma20": ind.sma(20), "sma50": ind.sma(50),
        "rsi": ind.rsi(14), "atr": ind.atr(14), "atr_sma50": sma(ind.atr(14), 50), "adx": adx, "plus_di": pdi,
        "minus_di": mdi, "bb_upper": upper, "bb_lower": lower, "macd": line, "macd_signal": sig,
        "roc": ind.roc(10), "donchian_high": dc_hi, "donchian_low": dc_lo,
    }  # fmt: skip
    return {k: v[:, -1] for k, v in out.items()}


def reference_sweep(panel: Panel, hit_means: np.ndarray, rows: int) -> tuple[list, list, list]:
    """The same sweep bar by bar in pure Python, for the first ``rows`` windows."""
    trend, rev, mom, brk, lrn = TrendAgent(), MeanReversionAgent(), MomentumAgent(), BreakoutAgent(), LearnerAgent()
    risk = RiskAgent()
    hz = [a.horizon for a in (trend, rev, mom, brk, lrn)]
    dirs, confs, decisions = [], [], []
    for r in range(rows):
        h, lo, c = panel.high[r].tolist(), panel.low[r].tolist(), panel.close[r].tolist()
        t = len(c) - 1
        memo: ref.Memo = {}
        votes = [
            ref.trend_at(trend, h, lo, c, t, memo),
            ref.reversion_at(rev, h, lo, c, t, memo),
            ref.momentum_at(mom, h, lo, c, t, memo),
            ref.breakout_at(brk, h, lo, c, t, memo),
            ref.learner_at(lrn, h, lo, c, t, memo),
        ]
        veto = ref.risk_veto_at(risk.lookback, risk.veto_percentile, h, lo, c, t, memo)
        decision = ref.consensus(votes, hit_means[r].tolist(), hz, veto)
        dirs.append([d for d, _ in votes])
        confs.append([cf for _, cf in votes])
        decisions.append(decision[0])
    return dirs, confs, decisions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7, help="timed vectorized sweeps (median reported)")
    ap.add_argument("--ref-windows", type=int, default=SYMBOLS * len(TIMEFRAMES),
                    help="windows run by the pure-Python reference (default: all)")
    args = ap.parse_args()

    panel = synthetic_panel()
    rows = panel.rows
    names = [a.name for a in default_agents()]
    hit_means = seeded_hit_means(rows, len(names))
    print(f"sweep: {SYMBOLS} symbols x {len(TIMEFRAMES)} timeframes = {rows} windows of {BARS} bars")

    vectorized_sweep(panel, hit_means)  # warm-up (imports, allocator)
    wall, cpu = [], []
    for _ in range(max(1, args.repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        d, c, decision = vectorized_sweep(panel, hit_means)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    vec_wall, vec_cpu = statistics.median(wall), statistics.median(cpu)
    print(f"vectorized sweep:  {vec_wall * 1000:9.1f} ms wall, {vec_cpu * 1000:9.1f} ms CPU per full sweep "
          f"(median of {len(wall)}; wall min {min(wall) * 1000:.1f}, max {max(wall) * 1000:.1f})")
    bare_numpy_sweep(panel)  # warm-up
    b_wall, b_cpu = [], []
    for _ in range(max(1, args.repeat)):
        t0, c0 = time.perf_counter(), time.process_time()
        bare = bare_numpy_sweep(panel)
        b_wall.append(time.perf_counter() - t0)
        b_cpu.append(time.process_time() - c0)
    bare_wall, bare_cpu = statistics.median(b_wall), statistics.median(b_cpu)
    print(f"bare numpy sweep of the same indicators (no agents, learner or consensus): {bare_wall * 1000:.1f} ms wall, "
          f"{bare_cpu * 1000:.1f} ms CPU (median of {len(b_wall)})")
    mine = agents_indicators(panel)
    worst = max(float(np.nanmax(np.abs(bare[k] - mine[k]) / np.maximum(np.abs(mine[k]), 1e-12))) for k in bare)
    print(f"sweep / bare indicators: {vec_wall / bare_wall:.2f}x wall, {vec_cpu / bare_cpu:.2f}x CPU; "
          f"{len(bare)} indicators agree at the last bar to {worst:.1e} (relative)")

    k = min(rows, max(1, args.ref_windows))
    t0, c0 = time.perf_counter(), time.process_time()
    rd, rc, rdec = reference_sweep(panel, hit_means, k)
    ref_wall = (time.perf_counter() - t0) * rows / k
    ref_cpu = (time.process_time() - c0) * rows / k
    scaled = "" if k == rows else f" (run on {k} of {rows} windows, scaled linearly)"
    print(f"pure-Python sweep: {ref_wall * 1000:9.0f} ms wall, {ref_cpu * 1000:9.0f} ms CPU per full sweep{scaled}")
    print(f"ratio (pure Python / vectorized): {ref_wall / vec_wall:.0f}x wall, {ref_cpu / vec_cpu:.0f}x CPU")

    same_dir = int(np.sum(np.array(rd) == d[:k]))
    conf_err = float(np.max(np.abs(np.array(rc) - c[:k])))
    same_dec = int(np.sum(np.array(rdec) == decision[:k]))
    print(f"agreement on the {k} reference windows: votes {same_dir}/{k * len(names)}, "
          f"consensus {same_dec}/{k}, max |confidence diff| {conf_err:.1e}")
    per_agent = ", ".join(
        f"{n} {int((d[:, j] > 0).sum())}/{int((d[:, j] < 0).sum())}" for j, n in enumerate(names)
    )
    print(f"votes at last bar (buy/sell): {per_agent}; consensus "
          f"{int((decision > 0).sum())}/{int((decision < 0).sum())}, flat {int((decision == 0).sum())}")

    print()
    series = Series.from_csv(CSV)
    cfg = BacktestConfig(cost=default_cost(series.symbol) or 0.0)  # the CLI's default: the symbol's typical spread
    t0 = time.perf_counter()
    report = run_backtest(series, config=cfg)
    bt = time.perf_counter() - t0
    print(format_report(report))
    print(f"\nbacktest time: {bt * 1000:.0f} ms for {len(series)} bars and {len(names)} agents + consensus")
    print("\nhit rate vs random baseline (95 % intervals):")
    for r in report.results:
        verdict = "above the random band" if r.hit_rate > r.random_high else (
            "below the random band" if r.hit_rate < r.random_low else "inside the random band")
        print(f"  {r.agent:<10} {100 * r.hit_rate:5.1f}% [{100 * r.ci_low:4.1f}, {100 * r.ci_high:4.1f}]"
              f" n={r.signals:<4} random {100 * r.random_hit_rate:5.1f}% "
              f"[{100 * r.random_low:4.1f}, {100 * r.random_high:4.1f}]  p={r.p_value:.3f}  {verdict}")


if __name__ == "__main__":
    main()
