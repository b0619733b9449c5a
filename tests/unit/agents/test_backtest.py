"""Backtest on the real EURUSD bars: it runs, it is honest about uncertainty, it cannot peek."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from domain.agents.agents import LearnerAgent, default_agents
from domain.agents.backtest import (
    BacktestConfig,
    BacktestReport,
    bars_per_year,
    default_cost,
    detect_timeframe,
    format_report,
    performance,
    run_backtest,
    wilson,
)
from domain.agents.series import Series
from domain.market.models import Timeframe

from .conftest import perturb_after, synthetic


@pytest.fixture(scope="module")
def report(eurusd: Series) -> BacktestReport:
    return run_backtest(eurusd)


def test_wilson_interval() -> None:
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-4) and hi == pytest.approx(0.5962, abs=1e-4)
    assert wilson(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_runs_on_real_bars_with_intervals_and_baselines(report: BacktestReport, eurusd: Series) -> None:
    names = [r.agent for r in report.results]
    assert names == [a.name for a in default_agents()] + ["consensus"]
    for r in report.results:
        assert r.signals > 0, r.agent
        assert r.ci_low <= r.hit_rate <= r.ci_high, r.agent
        assert r.ci_high - r.ci_low < 0.5
        assert 0.0 < r.random_hit_rate < 1.0 and r.random_low <= r.random_hit_rate <= r.random_high
        assert 0.0 < r.p_value <= 1.0
        assert math.isfinite(r.performance.sharpe) and r.performance.max_drawdown_price >= 0
    c = eurusd.close
    start = report.start_index
    assert report.buy_and_hold.pnl_price == pytest.approx(c[-1] - c[start])
    assert report.buy_and_hold.pnl_pct == pytest.approx(100 * (c[-1] - c[start]) / c[start])


def test_signals_are_consistent_with_the_table(report: BacktestReport, eurusd: Series) -> None:
    for r in report.results:
        sigs = [s for s in report.signals if s.agent == r.agent]
        done = [s for s in sigs if s.hit is not None]
        assert len(done) == r.signals and sum(s.hit for s in done) == r.hits
        assert r.performance.pnl_price == pytest.approx(sum(s.move for s in done), abs=1e-9)
        for a, b in zip(sigs, sigs[1:]):
            assert b.index >= a.index + a.horizon, "signals overlap"
        for s in done:
            assert s.index >= report.start_index
            move = s.direction * (eurusd.close[s.index + s.horizon] - s.entry)
            assert s.move == pytest.approx(move)
            assert s.hit == (move > 0 and move >= 0.1 * s.atr)


@pytest.mark.parametrize("near", [1500, 3000, 4500])
def test_no_look_ahead_in_signals(eurusd: Series, report: BacktestReport, near: int) -> None:
    # t is a refit bar of the learner, the agent most able to peek
    age = LearnerAgent().batch(eurusd).values["model_age"]
    t = int(np.flatnonzero(age[near:] == 0)[0]) + near
    cut = run_backtest(eurusd[: t + 1])
    moved = run_backtest(perturb_after(eurusd, t))

    def upto(rep: BacktestReport) -> list[tuple]:
        return [(s.agent, s.index, s.direction, round(s.confidence, 12), s.horizon)
                for s in rep.signals if s.index <= t]

    base = upto(report)
    assert any(s[0] == "consensus" for s in base) and any(s[0] == "learner" for s in base)
    assert upto(cut) == base
    assert upto(moved) == base
    # the consensus at every bar, and the track records behind it, are unchanged up to t
    for other in (cut, moved):
        a, b = report.path, other.path
        np.testing.assert_array_equal(a.hit_means[: t + 1], b.hit_means[: t + 1])
        np.testing.assert_array_equal(a.direction[: t + 1], b.direction[: t + 1])
        np.testing.assert_allclose(a.confidence[: t + 1], b.confidence[: t + 1], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(a.agreement[: t + 1], b.agreement[: t + 1], rtol=1e-12, atol=1e-14)
    later = [(s.agent, s.index, s.direction) for s in report.signals if s.index > t]
    assert later != [(s.agent, s.index, s.direction) for s in moved.signals if s.index > t]


def test_deterministic_and_seeded(eurusd: Series, report: BacktestReport) -> None:
    again = run_backtest(eurusd)
    assert again.results == report.results and again.signals == report.signals
    other = run_backtest(eurusd, config=BacktestConfig(seed=1))
    assert [r.hit_rate for r in other.results] == [r.hit_rate for r in report.results]
    assert [r.random_hit_rate for r in other.results] != [r.random_hit_rate for r in report.results]


def test_costs_reduce_pnl(eurusd: Series, report: BacktestReport) -> None:
    costly = run_backtest(eurusd, config=BacktestConfig(cost=0.0001))
    for a, b in zip(report.results, costly.results[:-1]):
        assert b.performance.pnl_price == pytest.approx(a.performance.pnl_price - 0.0001 * a.signals, abs=1e-9)
    # costs lower every net figure and leave the gross ones exactly as at cost 0
    for free, paid in zip(report.results, costly.results):
        assert paid.gross == free.gross == free.performance, paid.agent
        assert paid.performance.pnl_price < paid.gross.pnl_price  # type: ignore[union-attr]
        assert paid.performance.sharpe < paid.gross.sharpe  # type: ignore[union-attr]
    assert costly.buy_and_hold_gross == report.buy_and_hold_gross == report.buy_and_hold
    assert costly.buy_and_hold.pnl_price == pytest.approx(report.buy_and_hold.pnl_price - 0.0001, abs=1e-12)


def test_default_cost_is_the_symbols_typical_spread() -> None:
    assert default_cost("EURUSD") == 0.0001  # 10 points of 0.00001: one pip
    assert default_cost("usdjpy") == 0.012 and default_cost("gold") == 0.25  # aliases too
    assert default_cost("BTCUSD") == 30.0
    assert default_cost("GOOG") is None  # not in the symbol table


def test_drawdown_money_and_percent_are_one_episode() -> None:
    # equity 100, 50, 1000, 900, 950: the 50 % fall lost 50; the later 100 fall is only 10 %
    p = performance(np.array([-50.0, 950.0, -100.0, 50.0]), 100.0, 252.0)
    assert (p.pnl_price, p.pnl_pct) == (850.0, 850.0)
    assert (p.max_drawdown_price, p.max_drawdown_pct) == (50.0, 50.0)
    # the same path as buy-and-hold in a backtest, and in its printed report
    closes = np.concatenate([np.full(301, 100.0), [50.0, 1000.0, 900.0, 950.0]])  # tested from bar 300
    bars = Series.from_arrays(86400 * np.arange(closes.size), closes, closes, closes, closes, symbol="X")
    rep = run_backtest(bars)
    b = rep.buy_and_hold
    assert (b.max_drawdown_price, b.max_drawdown_pct) == (pytest.approx(50.0), pytest.approx(50.0))
    row = next(line for line in format_report(rep).splitlines() if line.startswith("buy&hold"))
    assert row.split()[1:5] == ["+850.00000", "+850.00", "50.00000", "50.00"]


def _daily(n: int, seed: int = 3) -> Series:
    """Weekday bars (weekend gaps) of a stock-like random walk."""
    rng = np.random.default_rng(seed)
    days = [d for d in range(int(n * 1.5)) if (d + 3) % 7 < 5][:n]  # epoch day 0 is a Thursday
    close = 120.0 * np.exp(np.cumsum(rng.normal(0.0004, 0.018, n)))
    return Series.from_arrays(np.array(days) * 86400, close, close * 1.01, close * 0.99, close, symbol="GOOG")


def test_sharpe_is_quantstats_on_daily_bars() -> None:
    series = _daily(700)
    assert detect_timeframe(series.time) is Timeframe.D1
    rep = run_backtest(dataclasses.replace(series, timeframe=Timeframe.D1))
    assert rep.timeframe == "D1" and rep.bars_per_year == 252
    # quantstats.stats.sharpe / empyrical.sharpe_ratio: mean / std(ddof=1) of simple returns * sqrt(252)
    c = series.close[rep.start_index :]
    r = c[1:] / c[:-1] - 1
    expected = r.mean() / r.std(ddof=1) * math.sqrt(252)
    assert rep.buy_and_hold.sharpe == pytest.approx(expected, rel=1e-9)
    peak = np.maximum.accumulate(c)
    assert rep.buy_and_hold.max_drawdown_pct == pytest.approx(100 * np.max(1 - c / peak), rel=1e-9)


def test_timeframe_from_the_median_bar_spacing(eurusd: Series) -> None:
    assert detect_timeframe(eurusd.time) is Timeframe.H1  # real H1 bars with weekend gaps
    assert detect_timeframe(_daily(300).time) is Timeframe.D1
    h4 = synthetic(50).time[::4]
    assert detect_timeframe(h4) is Timeframe.H4
    assert detect_timeframe(np.arange(10) * 7 * 86400) is None  # weekly: not a timeframe we have
    assert detect_timeframe(np.array([0])) is None
    # one bar in three missing, or stamps a few seconds off the hour, are still H1
    assert detect_timeframe(np.cumsum([3600, 3600, 7200] * 20)) is Timeframe.H1
    jitter = np.random.default_rng(0).integers(-30, 30, 200)
    assert detect_timeframe(3600 * np.arange(200) + jitter) is Timeframe.H1
    assert detect_timeframe(np.cumsum([3600, 7200, 7200] * 20)) is None  # median 2 h: no such timeframe


def test_annualization_follows_timeframe_and_session() -> None:
    assert bars_per_year(Timeframe.D1, "EURUSD") == 252 == bars_per_year(Timeframe.D1, "GOOG")
    assert bars_per_year(Timeframe.H1, "EURUSD") == 6240  # 260 days of 24 hours
    assert bars_per_year(Timeframe.H4, "GBPUSD") == 1560
    assert bars_per_year(Timeframe.H1, "XAUUSD") == 115 * 52  # a daily hour's break
    assert bars_per_year(Timeframe.H1, "BTCUSD") == 168 * 52
    assert bars_per_year(Timeframe.M15, "GER40") == 70 * 4 * 52
    assert bars_per_year(Timeframe.H1, "GOOG") == 6240  # off the table: the FX week


def test_progress_and_format(eurusd: Series, report: BacktestReport) -> None:
    calls: list[tuple[int, int]] = []
    run_backtest(eurusd[:1500], progress=lambda done, total: calls.append((done, total)))
    total = calls[-1][1]
    assert [d for d, _ in calls] == list(range(1, total + 1)) and total == len(default_agents()) + 3
    text = format_report(report)
    for name in ("trend", "reversion", "momentum", "breakout", "learner", "consensus", "buy&hold", "95% CI"):
        assert name in text
    assert "EURUSD H1" in text


def test_stats_accumulate(report: BacktestReport) -> None:
    for r in report.results:
        st = report.final_stats[r.agent]
        assert st.hits + st.misses == r.signals
        assert 2.0 <= st.alpha <= 2.0 + 1 / (1 - report.config.decay) + 1e-9
    assert np.sum(list(report.consensus_reasons.values())) == 5000 - 1 - report.start_index + 1


def test_weights_change_only_when_a_signal_resolves(report: BacktestReport) -> None:
    """Track records in force at bar t contain exactly the signals resolved at or before t."""
    from domain.agents.consensus import prior_stats, update_stats

    means = report.path.hit_means
    for j, r in enumerate(report.results[:-1]):
        st = prior_stats(r.agent, "", "")
        prev = st.mean
        resolved = [s for s in report.signals if s.agent == r.agent and s.hit is not None]
        assert resolved
        for s in resolved:
            at = s.index + s.horizon
            assert means[at - 1, j] == pytest.approx(prev, abs=1e-15), (r.agent, at)
            st = update_stats(st, s.hit, report.config.decay)
            assert means[at, j] == pytest.approx(st.mean, abs=1e-15), (r.agent, at)
            prev = st.mean
