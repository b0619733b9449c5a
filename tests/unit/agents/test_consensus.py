from __future__ import annotations

import math

import numpy as np
import pytest

from tests import agents_reference as ref
from domain.agents.consensus import (
    AgentStats,
    ConsensusConfig,
    combine,
    decide,
    log_odds_weight,
    prior_stats,
    update_stats,
)
from domain.agents.risk import RiskVote
from domain.agents.votes import Direction, Vote


def vote(agent: str, d: Direction, conf: float, horizon: int) -> Vote:
    return Vote(agent, d, conf, horizon, f"{agent}.x", {}, time=1, price=1.1, atr=0.001)


def stats(agent: str, a: float, b: float) -> AgentStats:
    return AgentStats(agent, "EURUSD", "H1", a, b)


VOTES = [
    vote("a", Direction.BUY, 0.8, 10),
    vote("b", Direction.BUY, 0.5, 5),
    vote("c", Direction.SELL, 1.0, 5),
    vote("d", Direction.SELL, 0.9, 5),  # no track record: weight 0
]
STATS = {"a": stats("a", 6, 4), "b": stats("b", 7, 3), "c": stats("c", 5.5, 4.5)}


def test_hand_computed_example() -> None:
    # weights: a ln(.6/.4)=0.405465, b ln(.7/.3)=0.847298, c ln(.55/.45)=0.200671, d 0
    # push = weight * confidence: a 0.324372, b 0.423649, c 0.200671
    d = decide(VOTES, STATS)
    assert d.direction is Direction.BUY
    assert d.score == pytest.approx(0.324372 + 0.423649 - 0.200671, abs=1e-6)
    assert d.agreement == pytest.approx(0.748021 / 0.948692, abs=1e-6)  # 0.788476
    assert d.confidence == pytest.approx((0.324372 * 0.6 + 0.423649 * 0.7) / 0.748021, abs=1e-6)  # 0.656636
    assert d.horizon == 7  # (0.324372*10 + 0.423649*5) / 0.748021 = 7.17
    assert d.explanation_key == "consensus.agree"
    assert d.values["voters"] == 4 and d.values["weighted_voters"] == 3
    assert d.values["for"] == 2 and d.values["against"] == 1
    assert [wv.weight for wv in d.votes] == pytest.approx([0.405465, 0.847298, 0.200671, 0.0], abs=1e-6)
    assert d.votes[3].hit_rate == 0.5


def test_gates() -> None:
    assert decide(VOTES, STATS, config=ConsensusConfig(agreement=0.8)).explanation_key == "consensus.disagreement"
    assert decide(VOTES, STATS, config=ConsensusConfig(quorum=4)).explanation_key == "consensus.no_track_record"
    assert decide(VOTES, STATS, config=ConsensusConfig(quorum=5)).explanation_key == "consensus.no_quorum"
    assert decide(VOTES, {}).explanation_key == "consensus.no_track_record"
    for cfg in (ConsensusConfig(agreement=0.8), ConsensusConfig(quorum=5)):
        d = decide(VOTES, STATS, config=cfg)
        assert d.direction is Direction.FLAT and d.confidence == 0.0


def test_risk_veto_blocks_an_agreed_call() -> None:
    risk = RiskVote("risk", True, "extreme", 0.99, 0.002, 0.004, None, "risk.extreme_volatility")
    d = decide(VOTES, STATS, risk)
    assert d.direction is Direction.FLAT and d.vetoed
    assert d.explanation_key == "consensus.vetoed" and d.values["veto_key"] == "risk.extreme_volatility"
    assert d.values["leaning"] == "buy"
    ok = RiskVote("risk", False, "normal", 0.5, 0.002, 0.004, None, "risk.ok")
    assert decide(VOTES, STATS, ok).direction is Direction.BUY


def test_vectorized_and_reference_agree() -> None:
    rng = np.random.default_rng(7)
    rows, agents = 400, 5
    d = rng.integers(-1, 2, (rows, agents))
    c = rng.uniform(0, 1, (rows, agents))
    m = rng.uniform(0.35, 0.75, (rows, agents))
    hz = np.array([10, 5, 5, 10, 5])
    veto = rng.uniform(size=rows) < 0.1
    out = combine(d, c, log_odds_weight(m), m, hz, veto)
    agreed = 0
    for r in range(rows):
        want = ref.consensus(list(zip(d[r].tolist(), c[r].tolist())), m[r].tolist(), hz.tolist(), bool(veto[r]))
        assert int(out.direction[r]) == want[0]
        assert out.confidence[r] == pytest.approx(want[1], abs=1e-12)
        assert out.agreement[r] == pytest.approx(want[2], abs=1e-12)
        agreed += want[0] != 0
    assert 20 < agreed < rows - 20


def test_beta_decay() -> None:
    s = prior_stats("a", "EURUSD", "H1")
    assert (s.alpha, s.beta, s.mean, s.weight) == (2.0, 2.0, 0.5, 0.0)
    s = update_stats(s, True, decay=0.5, now=100)
    assert (s.alpha, s.beta, s.hits, s.misses, s.last_update) == (3.0, 2.0, 1, 0, 100)
    s = update_stats(s, False, decay=0.5, now=200)
    assert (s.alpha, s.beta, s.hits, s.misses) == (2.5, 3.0, 1, 1)  # 2 + .5*1, 2 + .5*0 + 1
    # no decay = plain counting; full decay = only the last outcome counts
    t = prior_stats("a", "X", "H1")
    for h in (True, True, False, True):
        t = update_stats(t, h, decay=1.0)
    assert (t.alpha, t.beta) == (5.0, 3.0)
    assert update_stats(t, False, decay=0.0).alpha == 2.0
    # a long winning streak saturates at alpha = 2 + 1/(1-decay)
    u = prior_stats("a", "X", "H1")
    for _ in range(2000):
        u = update_stats(u, True, decay=0.98)
    assert u.alpha == pytest.approx(52.0) and u.beta == pytest.approx(2.0)
    with pytest.raises(ValueError):
        update_stats(u, True, decay=1.5)


def test_log_odds_weight() -> None:
    assert log_odds_weight(0.5) == 0.0
    assert log_odds_weight(0.3) == 0.0
    assert log_odds_weight(0.75) == pytest.approx(math.log(3))
