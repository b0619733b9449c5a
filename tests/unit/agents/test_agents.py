"""Agents: batch = single vote, no look-ahead, determinism, pure-Python twins."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests import agents_reference as ref
from domain.agents.agents import (
    Agent,
    BreakoutAgent,
    LearnerAgent,
    MeanReversionAgent,
    MomentumAgent,
    TrendAgent,
    default_agents,
)
from domain.agents.series import Panel, Series
from domain.agents.votes import Direction, VoteBatch

from .conftest import perturb_after

RULES = (TrendAgent(), MeanReversionAgent(), MomentumAgent(), BreakoutAgent())
# a quick learner for the heavier checks: shorter window, frequent refits
LEARNER = LearnerAgent(train_window=300, min_train=100, refit_every=7)
ALL: tuple[Agent, ...] = (*RULES, LEARNER)
REF_AT = {
    "trend": ref.trend_at,
    "reversion": ref.reversion_at,
    "momentum": ref.momentum_at,
    "breakout": ref.breakout_at,
}


@pytest.fixture(scope="module")
def s(eurusd: Series) -> Series:
    return eurusd[:1200]


@pytest.fixture(scope="module")
def batches(s: Series) -> dict[str, VoteBatch]:
    return {a.name: a.batch(s) for a in ALL}


def test_every_agent_votes_both_ways_with_valid_fields(batches: dict[str, VoteBatch]) -> None:
    for name, b in batches.items():
        assert (b.direction > 0).sum() > 0 and (b.direction < 0).sum() > 0, name
        assert np.all((b.confidence >= 0) & (b.confidence <= 1)), name
        assert np.all(b.confidence[b.direction == 0] == 0), name
        assert b.key.max() < len(b.keys)
        assert b.direction[:20].tolist() == [0] * 20, f"{name} voted before any indicator was ready"


@pytest.mark.parametrize("agent", ALL, ids=lambda a: a.name)
def test_vote_equals_batch_at_that_bar(agent: Agent, s: Series, batches: dict[str, VoteBatch]) -> None:
    b = batches[agent.name]
    picks = [t for t in range(250, len(s), 37)] + [len(s) - 1]
    for t in picks:
        single = agent.vote(s[: t + 1])
        cell = b.at(t)
        assert single.direction == cell.direction, (agent.name, t)
        assert single.rationale_key == cell.rationale_key
        assert single.time == int(s.time[t]) and single.price == float(s.close[t])
        assert math.isclose(single.confidence, cell.confidence, rel_tol=1e-9, abs_tol=1e-12)
        assert single.values.keys() == cell.values.keys()
        for k in single.values:
            assert math.isclose(single.values[k], cell.values[k], rel_tol=1e-9, abs_tol=1e-12), k


@pytest.mark.parametrize("agent", ALL, ids=lambda a: a.name)
def test_no_look_ahead(agent: Agent, s: Series, batches: dict[str, VoteBatch]) -> None:
    # t is a learner refit bar: a model fitted there must not see labels resolved after it
    t = int(np.flatnonzero(batches[LEARNER.name].values["model_age"][800:] == 0)[0]) + 800
    moved = agent.batch(perturb_after(s, t))
    full = batches[agent.name]
    np.testing.assert_array_equal(moved.direction[: t + 1], full.direction[: t + 1])
    np.testing.assert_allclose(moved.confidence[: t + 1], full.confidence[: t + 1], rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(moved.key[: t + 1], full.key[: t + 1])
    # ... and the perturbation is real: later votes do change
    assert not np.array_equal(moved.direction[t + 1 :], full.direction[t + 1 :])


def test_learner_training_window_ends_horizon_bars_back(s: Series, batches: dict[str, VoteBatch]) -> None:
    """The model in force at bar t was fitted at refit bar r <= t on samples i with i + h <= r only."""
    lrn, b = LEARNER, batches[LEARNER.name]
    feats = LearnerAgent.features(s)
    ok = np.isfinite(feats).all(axis=1)
    f0 = int(np.flatnonzero(ok)[0])
    c, h = s.close, lrn.horizon
    live = np.flatnonzero(~np.isnan(b.values["p_up"]))
    assert live[0] == f0 + h + lrn.min_train - 1
    for t in live[::41]:
        age = int(b.values["model_age"][t])
        assert 0 <= age < lrn.refit_every
        r = t - age
        assert (r - live[0]) % lrn.refit_every == 0
        lo = max(f0, r - h - lrn.train_window + 1)
        expected = sum(1 for i in range(lo, r - h + 1) if ok[i] and c[i + h] != c[i])
        assert b.values["train_samples"][t] == expected, t


@pytest.mark.parametrize("agent", RULES, ids=lambda a: a.name)
def test_rule_agents_match_pure_python(agent: Agent, s: Series, batches: dict[str, VoteBatch]) -> None:
    h, lo, c = s.high.tolist(), s.low.tolist(), s.close.tolist()
    b = batches[agent.name]
    fn = REF_AT[agent.name]
    nonflat = np.flatnonzero(b.direction != 0)
    picks = sorted(set(range(0, len(s), 23)) | set(nonflat[::7].tolist()))
    for t in picks:
        d, cf = fn(agent, h, lo, c, t)
        assert d == int(b.direction[t]), (agent.name, t)
        assert math.isclose(cf, float(b.confidence[t]), rel_tol=1e-9, abs_tol=1e-9), (agent.name, t)


def test_learner_matches_pure_python(eurusd: Series) -> None:
    lrn = LearnerAgent(train_window=200, min_train=80, refit_every=10)
    s = eurusd[2000:2400]
    b = lrn.batch(s)
    h, lo, c = s.high.tolist(), s.low.tolist(), s.close.tolist()
    for t in (250, 300, 333, 399):
        d, cf = ref.learner_at(lrn, h, lo, c, t)
        assert d == int(b.direction[t]), t
        assert math.isclose(cf, float(b.confidence[t]), rel_tol=1e-7, abs_tol=1e-9), t


def test_deterministic(s: Series, batches: dict[str, VoteBatch]) -> None:
    for agent in ALL:
        again = agent.batch(s)
        np.testing.assert_array_equal(again.direction, batches[agent.name].direction)
        np.testing.assert_array_equal(again.confidence, batches[agent.name].confidence)


def test_panel_rows_equal_single_series(eurusd: Series) -> None:
    windows = [eurusd[i : i + 500] for i in (0, 700, 2100)]
    panel = Panel.stack(windows)
    for agent in (*RULES, LearnerAgent(refit_every=50)):
        pb = agent.batch(panel)
        last = agent.last(panel)
        for r, w in enumerate(windows):
            sb = agent.batch(w)
            np.testing.assert_array_equal(pb.direction[r], sb.direction)
            np.testing.assert_allclose(pb.confidence[r], sb.confidence, rtol=1e-9, atol=1e-12)
            one = last.at(0, row=r)
            assert one.direction == sb.at(len(w) - 1).direction
            assert math.isclose(one.confidence, float(sb.confidence[-1]), rel_tol=1e-9, abs_tol=1e-12)


def test_rationale_has_numbers(s: Series) -> None:
    for agent in default_agents():
        v = agent.vote(s)
        assert v.rationale_key.startswith(agent.name + ".")
        assert v.values and all(math.isfinite(x) for x in v.values.values())
        assert v.horizon == agent.horizon and math.isfinite(v.atr)
    up = TrendAgent().batch(s)
    i = int(np.flatnonzero(up.direction > 0)[0])
    vote = up.at(i)
    assert vote.direction is Direction.BUY and vote.rationale_key == "trend.up"
    assert vote.values["close"] > vote.values["fast"] > vote.values["slow"]
    assert vote.confidence == pytest.approx(min(1.0, vote.values["adx"] / 50.0))


def _same(a: VoteBatch, b: VoteBatch) -> bool:
    return (np.array_equal(a.direction, b.direction) and np.array_equal(a.confidence, b.confidence)
            and np.array_equal(a.key, b.key) and np.array_equal(a.atr, b.atr, equal_nan=True)
            and a.values.keys() == b.values.keys()
            and all(np.array_equal(a.values[k], b.values[k], equal_nan=True) for k in a.values))


def test_last_is_exactly_the_last_bar_of_batch(eurusd: Series) -> None:
    """``last`` evaluates the rule formulas on the indicators' last bars only: the very same numbers."""
    panel = Panel.stack([eurusd[i : i + 400] for i in (0, 900, 3100)])
    for agent in RULES:
        for bars in (panel, eurusd[:300], eurusd[:1]):
            assert _same(agent.last(bars), agent.batch(bars).tail()), agent.name


def test_learner_block_size_does_not_change_a_single_number(eurusd: Series, monkeypatch: pytest.MonkeyPatch) -> None:
    from domain.agents import agents as module

    panel = Panel.stack([eurusd[i : i + 500] for i in (0, 700, 2100, 3000)])
    series = eurusd[:900]
    default = (LEARNER.last(panel), LEARNER.batch(series))
    monkeypatch.setattr(module, "_FIT_BLOCK_BYTES", 1)  # one model per block
    assert _same(LEARNER.last(panel), default[0]) and _same(LEARNER.batch(series), default[1])
