"""Walk-forward backtest of every agent and of the consensus over one series.

No look-ahead: agent votes at bar ``t`` use bars ``<= t`` (their batch forms are
causal); the consensus at ``t`` weighs agents by stats built only from signals
already resolved at ``t`` (resolution bar ``<= t``), updated online exactly as
the live runner does.

Signals. An agent (or the consensus) issues a signal at a non-flat bar when it
has no signal still running; a signal runs for its horizon. Signals therefore
do not overlap, which keeps their outcomes close to independent -- the
assumption behind the binomial (Wilson) confidence interval. Signals whose
horizon runs past the data stay open and are not scored.

Each signal holds a fixed position of one unit from the signal bar's close to
the horizon close and pays ``config.cost`` (price units per round trip: the
spread, plus any commission) on the bar after it opens. Every figure comes net
of that cost and gross of it (``AgentResult.gross``); at cost 0 they agree.

Money. The equity of a row is one unit's price at the start of the test plus
its cumulative P/L (for buy-and-hold it is the price itself). P/L is in price
units and in percent of that starting price. Max drawdown is the deepest fall
of the equity below its running peak, in percent of the peak, with the price
fall of that same episode. Sharpe is mean / sample standard deviation of the
per-bar returns of the equity (flat bars count as zero), annualized with
:func:`bars_per_year`: for buy-and-hold it equals quantstats' and empyrical's
``sharpe`` of the close series (``periods=252`` on daily bars).

Annualization (:func:`bars_per_year`). Daily bars: 252 a year, the equities
convention quantstats and empyrical use, also for FX and crypto. Intraday
bars: the hours a week the symbol trades (its session in the symbol table; 120
for FX, 115 for metals and US index CFDs, 70 for European ones, 168 for
crypto) times 52 weeks, divided by the bar length: FX H1 is 6,240 bars a year
(260 days of 24 hours). A symbol outside the table (a stock from a CSV) is
taken to trade like FX, 24 hours on 5 days; the report prints the figure used.

Baselines. Random directions at the very same signal times and horizons
(``random_draws`` seeded draws): their mean hit rate, the 2.5-97.5 % band of
draw hit rates, and a permutation p-value (share of draws at least as good).
Buy-and-hold over the test period.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from domain.agents.agents import ATR_PERIOD, Agent, default_agents
from domain.agents.consensus import (
    REASONS,
    AgentStats,
    ConsensusConfig,
    DEFAULT_DECAY,
    combine,
    log_odds_weight,
    prior_stats,
    update_stats,
)
from domain.agents.indicators import IndicatorSet
from domain.agents.learning import DEFAULT_THRESHOLD_ATR, hits_at
from domain.agents.risk import RiskAgent
from domain.agents.series import Series
from domain.equity import TRADING_DAYS, deepest_drawdown
from domain.market.models import Timeframe
from domain.market.symbols import ALIASES, UNIVERSE, SymbolDef, weekly_minutes
from datetime import UTC

CONSENSUS = "consensus"
Progress = Callable[[int, int], None]


FX_WEEK_MINUTES = 5 * 24 * 60  # Sunday 22:00 to Friday 22:00


def _symbol_def(symbol: str) -> SymbolDef | None:
    name = symbol.strip().upper()
    return UNIVERSE.get(ALIASES.get(name, name))


def bars_per_year(timeframe: Timeframe | None, symbol: str = "") -> float:
    """Bars a year for annualizing (see the module docstring): 252 daily bars, else the symbol's trading hours."""
    if timeframe is None or timeframe.seconds >= 86400:
        return float(TRADING_DAYS)
    found = _symbol_def(symbol)
    minutes = int(weekly_minutes(found.session).sum()) if found is not None else FX_WEEK_MINUTES
    return minutes * 60.0 * 52.0 / timeframe.seconds


def default_cost(symbol: str) -> float | None:
    """A round trip's cost in price units: the symbol's typical spread from the symbol table (None off the table)."""
    found = _symbol_def(symbol)
    return None if found is None else round(found.spread * found.spec.point, 10)


def detect_timeframe(time: np.ndarray) -> Timeframe | None:
    """The timeframe of the median bar spacing (within 10 %); None for fewer than two bars or another spacing.

    The median, not the most common gap: daily bars with weekend and holiday
    gaps are still D1, and a few missing hours do not turn H1 into anything else.
    """
    t = np.asarray(time, dtype=np.int64)
    if t.size < 2:
        return None
    step = float(np.median(np.diff(t)))
    if not step > 0:
        return None
    best = min(Timeframe, key=lambda tf: abs(math.log(step / tf.seconds)))
    return best if abs(step / best.seconds - 1.0) <= 0.1 else None


def median_spacing(time: np.ndarray) -> float:
    """Seconds between bars, the median (NaN for fewer than two bars)."""
    t = np.asarray(time, dtype=np.int64)
    return float(np.median(np.diff(t))) if t.size > 1 else math.nan


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95 % by default)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = hits / n
    den = 1.0 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, mid - half), min(1.0, mid + half))


@dataclass(frozen=True, slots=True)
class BacktestConfig:
    start: int = 300  # first bar allowed to issue a signal
    threshold_atr: float = DEFAULT_THRESHOLD_ATR
    decay: float = DEFAULT_DECAY
    seed: int = 0
    random_draws: int = 1000
    cost: float = 0.0  # price units charged per signal, a round trip (spread, commission)
    consensus: ConsensusConfig = ConsensusConfig()


@dataclass(frozen=True, slots=True)
class SignalRecord:
    agent: str
    index: int
    time: int
    direction: int  # +1 buy, -1 sell
    entry: float
    atr: float
    horizon: int
    confidence: float
    hit: bool | None  # None while open at the end of the data
    move: float | None


@dataclass(frozen=True, slots=True)
class Performance:
    pnl_price: float
    pnl_pct: float
    max_drawdown_price: float  # the price fall of the deepest drawdown
    max_drawdown_pct: float  # that same drawdown in percent of its peak equity
    sharpe: float  # NaN when P/L never varies or the equity reaches zero


@dataclass(frozen=True, slots=True)
class AgentResult:
    agent: str
    signals: int  # resolved signals
    open_signals: int
    hits: int
    hit_rate: float
    ci_low: float
    ci_high: float
    avg_move_atr: float
    performance: Performance  # net of costs
    random_hit_rate: float  # mean over random-direction draws
    random_low: float  # 2.5 % of draw hit rates
    random_high: float  # 97.5 %
    p_value: float  # share of random draws with hit rate >= this one (permutation test)
    random_pnl_price: float  # mean P/L of the random draws, net of costs
    gross: Performance | None = None  # the same signals before costs


@dataclass(frozen=True, slots=True, eq=False)
class ConsensusPath:
    """The consensus at every bar, as the live runner would have produced it."""

    direction: np.ndarray  # int8 per bar
    confidence: np.ndarray
    agreement: np.ndarray
    reason: np.ndarray  # int8 index into consensus.REASONS
    hit_means: np.ndarray  # (bars, agents) posterior mean hit rate in force at each bar


@dataclass(frozen=True, slots=True)
class BacktestReport:
    symbol: str
    timeframe: str
    bars: int
    start_index: int
    start_time: int
    end_time: int
    config: BacktestConfig
    results: tuple[AgentResult, ...]  # agents in order, then the consensus
    buy_and_hold: Performance  # net of one round trip
    signals: tuple[SignalRecord, ...]
    final_stats: Mapping[str, AgentStats] = field(default_factory=dict)
    consensus_reasons: Mapping[str, int] = field(default_factory=dict)  # bars per reason
    path: ConsensusPath | None = field(default=None, compare=False)
    buy_and_hold_gross: Performance | None = None
    bars_per_year: float = math.nan  # the annualization of every Sharpe


def _non_overlapping(direction: np.ndarray, start: int, horizon: np.ndarray) -> list[int]:
    """Signal bars: non-flat bars from ``start`` on, each after the previous one expired."""
    out: list[int] = []
    free = start
    for i in np.flatnonzero(direction != 0):
        if i >= free:
            out.append(int(i))
            free = int(i) + int(horizon[i])
    return out


def performance(bar_pnl: np.ndarray, ref_price: float, per_year: float) -> Performance:
    """P/L, drawdown and Sharpe of per-bar P/L on an equity of ``ref_price`` (see the module docstring)."""
    equity = ref_price + np.concatenate([[0.0], np.cumsum(bar_pnl)])
    total = float(equity[-1] - ref_price)
    worst = deepest_drawdown(equity)
    dd_price, dd_pct = (worst[0], worst[1]) if worst is not None else (0.0, 0.0)
    sharpe = math.nan
    before = equity[:-1]
    if bar_pnl.size > 1 and np.all(before > 0):
        returns = bar_pnl / before
        sd = float(np.std(returns, ddof=1))
        if sd > 1e-15:
            sharpe = float(np.mean(returns) / sd * math.sqrt(per_year))
    return Performance(total, 100.0 * total / ref_price, dd_price, dd_pct, sharpe)


@dataclass(frozen=True, slots=True)
class _Row:
    name: str
    index: np.ndarray
    sign: np.ndarray
    horizon: np.ndarray
    confidence: np.ndarray


def _evaluate(
    row: _Row, row_id: int, series: Series, atr: np.ndarray, config: BacktestConfig, per_year: float
) -> tuple[AgentResult, list[SignalRecord], np.ndarray, np.ndarray]:
    c, n, start = series.close, len(series), config.start
    done = row.index + row.horizon <= n - 1
    idx, sgn, hz = row.index[done], row.sign[done], row.horizon[done]
    hit, move = hits_at(c, idx, sgn, atr[idx], hz, config.threshold_atr)
    pos = np.zeros(n)
    cost = np.zeros(n)
    for i, s, h in zip(idx, sgn, hz):
        pos[i + 1 : i + h + 1] = s
        cost[i + 1] = config.cost
    gross_pnl = (pos[1:] * np.diff(c))[start:]
    bar_pnl = gross_pnl - cost[1:][start:]
    k, m = int(hit.sum()), int(idx.size)
    lo, hi = wilson(k, m)
    rate = k / m if m else math.nan
    # random directions at the same bars and horizons
    rng = np.random.default_rng([config.seed, row_id])
    draws = rng.choice(np.array([-1, 1]), size=(config.random_draws, m))
    hit_buy, move_buy = hits_at(c, idx, np.ones(m), atr[idx], hz, config.threshold_atr)
    hit_sell, _ = hits_at(c, idx, -np.ones(m), atr[idx], hz, config.threshold_atr)
    r_rates = np.where(draws > 0, hit_buy, hit_sell).mean(axis=1) if m else np.full(config.random_draws, np.nan)
    r_pnl = (draws * move_buy).sum(axis=1) - config.cost * m if m else np.zeros(config.random_draws)
    p_value = (1 + int(np.sum(r_rates >= rate))) / (config.random_draws + 1) if m else math.nan
    result = AgentResult(
        agent=row.name,
        signals=m,
        open_signals=int((~done).sum()),
        hits=k,
        hit_rate=rate,
        ci_low=lo,
        ci_high=hi,
        avg_move_atr=float(np.mean(move / atr[idx])) if m else math.nan,
        performance=performance(bar_pnl, float(c[start]), per_year),
        random_hit_rate=float(np.mean(r_rates)) if m else math.nan,
        random_low=float(np.percentile(r_rates, 2.5)) if m else math.nan,
        random_high=float(np.percentile(r_rates, 97.5)) if m else math.nan,
        p_value=p_value,
        random_pnl_price=float(np.mean(r_pnl)),
        gross=performance(gross_pnl, float(c[start]), per_year),
    )
    records = []
    outcome = dict(zip(idx.tolist(), zip(hit.tolist(), move.tolist())))
    for i, s, h, cf in zip(row.index.tolist(), row.sign.tolist(), row.horizon.tolist(), row.confidence.tolist()):
        res = outcome.get(i)
        records.append(
            SignalRecord(
                row.name, i, int(series.time[i]), int(s), float(c[i]), float(atr[i]), int(h), float(cf),
                None if res is None else bool(res[0]), None if res is None else float(res[1]),
            )
        )
    return result, records, idx + hz, hit


def run_backtest(
    series: Series,
    agents: Sequence[Agent] | None = None,
    risk: RiskAgent | None = RiskAgent(),
    config: BacktestConfig = BacktestConfig(),
    progress: Progress | None = None,
) -> BacktestReport:
    """Backtest ``agents`` and their consensus over ``series`` (see module docstring)."""
    agents = tuple(agents) if agents is not None else default_agents()
    n = len(series)
    if n <= config.start + 1:
        raise ValueError(f"need more than {config.start + 1} bars, got {n}")
    total = len(agents) + 3
    step = 0

    def tick() -> None:
        nonlocal step
        step += 1
        if progress is not None:
            progress(step, total)

    tf = series.timeframe or detect_timeframe(series.time)
    per_year = bars_per_year(tf, series.symbol)
    ind = IndicatorSet(series)
    atr = ind.atr(ATR_PERIOD)
    batches = []
    for agent in agents:
        batches.append(agent.batch(series, ind))
        tick()
    veto = risk.batch(series, ind).veto if risk is not None else np.zeros(n, dtype=bool)
    tick()

    d = np.stack([b.direction for b in batches], axis=1).astype(np.float64)  # (n, A)
    conf = np.stack([b.confidence for b in batches], axis=1)
    hz = np.array([a.horizon for a in agents], dtype=np.int64)
    results: list[AgentResult] = []
    records: list[SignalRecord] = []
    means = np.full(d.shape, 0.5)
    final: dict[str, AgentStats] = {}
    sym, tfname = series.symbol, tf.value if tf is not None else ""
    for j, agent in enumerate(agents):
        idx = np.array(_non_overlapping(d[:, j], config.start, np.full(n, hz[j])), dtype=np.int64)
        row = _Row(agent.name, idx, d[idx, j].astype(np.int64), np.full(idx.size, hz[j]), conf[idx, j])
        res, recs, resolved_at, hit = _evaluate(row, j, series, atr, config, per_year)
        results.append(res)
        records.extend(recs)
        # online track record: stats change at each resolution bar
        st = prior_stats(agent.name, sym, tfname)
        for at, h in zip(resolved_at.tolist(), hit.tolist()):
            st = update_stats(st, bool(h), config.decay, now=int(series.time[at]))
            means[at:, j] = st.mean
        final[agent.name] = st

    comb = combine(d, conf, log_odds_weight(means), means, hz.astype(np.float64), veto, config.consensus)
    tick()
    cidx = np.array(_non_overlapping(comb.direction, config.start, comb.horizon), dtype=np.int64)
    crow = _Row(CONSENSUS, cidx, comb.direction[cidx].astype(np.int64), comb.horizon[cidx], comb.confidence[cidx])
    cres, crecs, cresolved, chit = _evaluate(crow, len(agents), series, atr, config, per_year)
    results.append(cres)
    records.extend(crecs)
    st = prior_stats(CONSENSUS, sym, tfname)
    for at, h in zip(cresolved.tolist(), chit.tolist()):
        st = update_stats(st, bool(h), config.decay, now=int(series.time[at]))
    final[CONSENSUS] = st

    c = series.close
    hold = np.diff(c)[config.start :]
    hold_net = hold.copy()
    hold_net[:1] -= config.cost  # buy at the start, sell at the end: one round trip
    tested = comb.reason[config.start :]
    reasons = {REASONS[k]: int(np.sum(tested == k)) for k in range(len(REASONS))}
    tick()
    return BacktestReport(
        symbol=sym,
        timeframe=tfname,
        bars=n,
        start_index=config.start,
        start_time=int(series.time[config.start]),
        end_time=int(series.time[-1]),
        config=config,
        results=tuple(results),
        buy_and_hold=performance(hold_net, float(c[config.start]), per_year),
        signals=tuple(sorted(records, key=lambda r: (r.index, r.agent))),
        final_stats=final,
        consensus_reasons=reasons,
        path=ConsensusPath(comb.direction, comb.confidence, comb.agreement, comb.reason, means),
        buy_and_hold_gross=performance(hold, float(c[config.start]), per_year),
        bars_per_year=per_year,
    )


def _pct(x: float) -> str:
    return "   -" if not math.isfinite(x) else f"{100 * x:4.1f}"


def _num(x: float, fmt: str) -> str:
    return "-" if not math.isfinite(x) else format(x, fmt)


def format_report(report: BacktestReport) -> str:
    """Plain-text tables for the terminal: hit rates, then P/L, drawdown and Sharpe net of costs beside gross."""
    from datetime import datetime

    def ts(t: int) -> str:
        return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d %H:%M")

    cfg = report.config
    lines = [
        f"Backtest {report.symbol or '?'} {report.timeframe or '?'}: {report.bars} bars, "
        f"tested {ts(report.start_time)} .. {ts(report.end_time)} (from bar {report.start_index})",
        f"hit = close after the horizon moved >= {cfg.threshold_atr:g} ATR in the signal's direction; "
        f"signals never overlap; random draws: {cfg.random_draws} (seed {cfg.seed})",
        "",
        f"{'agent':<10} {'signals':>7} {'open':>4} {'hit%':>5} {'95% CI':>13}  {'random%':>7} {'random 95%':>13} "
        f"{'p':>6}",
    ]
    for r in report.results:
        lines.append(
            f"{r.agent:<10} {r.signals:>7} {r.open_signals:>4} {_pct(r.hit_rate):>5} "
            f"[{_pct(r.ci_low)}, {_pct(r.ci_high)}]  {_pct(r.random_hit_rate):>7} "
            f"[{_pct(r.random_low)}, {_pct(r.random_high)}] {_num(r.p_value, '6.3f'):>6}"
        )

    def money(p: Performance | None) -> str:
        if p is None:
            return f"{'-':>11} {'-':>7} {'-':>11} {'-':>6} {'-':>6}"
        return (
            f"{_num(p.pnl_price, '+11.5f'):>11} {_num(p.pnl_pct, '+7.2f'):>7} "
            f"{_num(p.max_drawdown_price, '11.5f'):>11} {_num(p.max_drawdown_pct, '6.2f'):>6} "
            f"{_num(p.sharpe, '+6.2f'):>6}"
        )

    head = f"{'P/L':>11} {'P/L%':>7} {'maxDD':>11} {'maxDD%':>6} {'Sharpe':>6}"
    lines += [
        "",
        f"net of costs: {cfg.cost:g} per round trip (price units, charged once per signal; buy&hold pays one); "
        "gross: before costs",
        f"{'':<10} {'net':^44} | {'gross':^44} |",
        f"{'agent':<10} {head} | {head} | {'rnd P/L':>11}",
    ]
    for r in report.results:
        lines.append(f"{r.agent:<10} {money(r.performance)} | {money(r.gross)} | {_num(r.random_pnl_price, '+11.5f'):>11}")
    lines.append(f"{'buy&hold':<10} {money(report.buy_and_hold)} | {money(report.buy_and_hold_gross)} |")
    per_year = report.bars_per_year
    lines += [
        "P/L in price units and in % of one unit's price at the start; maxDD = the deepest fall of that equity "
        "below its peak (price and % of the peak, one episode)",
        f"Sharpe: per-bar returns of that equity, annualized with {_num(per_year, '.0f')} bars a year "
        f"({report.timeframe or '?'})",
    ]
    if report.consensus_reasons:
        counts = ", ".join(f"{k.split('.', 1)[1]} {v}" for k, v in report.consensus_reasons.items())
        lines += ["", f"consensus per bar: {counts}"]
    return "\n".join(lines)
