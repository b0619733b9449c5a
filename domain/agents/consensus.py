"""Weighted consensus of the agents, weighted by their track records.

Track record. Each agent keeps, per (symbol, timeframe), a Beta posterior of
its hit rate: prior Beta(2, 2); each resolved signal first decays the evidence
gathered so far toward the prior, then adds itself::

    alpha <- 2 + decay * (alpha - 2) + hit
    beta  <- 2 + decay * (beta  - 2) + miss

so a signal resolved k signals ago counts ``decay**k``; with decay 0.98 the
memory is about 50 signals. The prior never decays: a silent agent drifts
nowhere, and a fresh agent sits at a hit rate of 0.5.

Weight. ``w = max(0, log(m / (1 - m)))`` with ``m = alpha / (alpha + beta)``,
the posterior mean hit rate: the log-odds weight that is optimal for a
majority vote of independent voters with known accuracies (Nitzan & Paroush,
1982). An agent no better than a coin gets weight 0; a worse one is ignored,
not inverted.

Decision. Each non-flat vote pushes ``w * confidence`` toward its side; the
sign of the sum is the direction. It stands only if

* at least ``quorum`` agents are non-flat (else ``no_quorum``), and at least
  ``quorum`` of those have a positive weight (else ``no_track_record``),
* the push is not tied,
* the winning side holds at least ``agreement`` of the total push,
* the Risk agent does not veto.

Consensus confidence is the push-weighted mean posterior hit rate of the
agents on the winning side: an estimate, from their own records, of how often
calls like this one hit. It never exceeds the best backer's record, because
the agents are correlated and summing their log-odds would overstate it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from domain.agents.risk import RiskVote
from domain.agents.votes import Direction, Vote

PRIOR_ALPHA = 2.0
PRIOR_BETA = 2.0
DEFAULT_DECAY = 0.98


@dataclass(frozen=True, slots=True)
class AgentStats:
    """One agent's decayed track record on one (symbol, timeframe)."""

    agent: str
    symbol: str
    timeframe: str
    alpha: float = PRIOR_ALPHA
    beta: float = PRIOR_BETA
    hits: int = 0  # raw counts, never decayed (for display)
    misses: int = 0
    last_update: int = 0  # epoch seconds of the last resolved signal

    @property
    def mean(self) -> float:
        """Posterior mean hit rate."""
        return self.alpha / (self.alpha + self.beta)

    @property
    def weight(self) -> float:
        return log_odds_weight(self.mean)


def prior_stats(agent: str, symbol: str, timeframe: str) -> AgentStats:
    return AgentStats(agent, symbol, timeframe)


def update_stats(stats: AgentStats, hit: bool, decay: float = DEFAULT_DECAY, now: int | None = None) -> AgentStats:
    """Decay the evidence toward the prior, then count one resolved signal."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError("decay must be in [0, 1]")
    return replace(
        stats,
        alpha=PRIOR_ALPHA + decay * (stats.alpha - PRIOR_ALPHA) + (1.0 if hit else 0.0),
        beta=PRIOR_BETA + decay * (stats.beta - PRIOR_BETA) + (0.0 if hit else 1.0),
        hits=stats.hits + int(hit),
        misses=stats.misses + int(not hit),
        last_update=stats.last_update if now is None else now,
    )


def log_odds_weight(mean: float | np.ndarray) -> float | np.ndarray:
    """``max(0, log(m / (1 - m)))``: zero at or below a coin's hit rate."""
    m = np.clip(mean, 1e-9, 1.0 - 1e-9)
    w = np.maximum(0.0, np.log(m / (1.0 - m)))
    return float(w) if np.ndim(w) == 0 else w


@dataclass(frozen=True, slots=True)
class ConsensusConfig:
    quorum: int = 2
    agreement: float = 0.6


# Reason codes of the vectorized core, in ``REASONS`` order.
REASONS = (
    "consensus.agree",
    "consensus.no_quorum",
    "consensus.no_track_record",
    "consensus.tie",
    "consensus.disagreement",
    "consensus.vetoed",
)


@dataclass(frozen=True, slots=True, eq=False)
class Combined:
    """Vectorized consensus over any leading shape (e.g. bars or a sweep)."""

    direction: np.ndarray  # int8 final decision (0 when rejected)
    leaning: np.ndarray  # int8 sign of the weighted push, before the gates
    confidence: np.ndarray
    agreement: np.ndarray
    score: np.ndarray  # signed push
    voters: np.ndarray  # non-flat agents with positive weight
    raw_voters: np.ndarray  # non-flat agents, any weight
    horizon: np.ndarray  # push-weighted mean horizon of the backers
    reason: np.ndarray  # int8 index into REASONS


def combine(
    direction: np.ndarray,
    confidence: np.ndarray,
    weight: np.ndarray,
    hit_mean: np.ndarray,
    horizon: np.ndarray,
    veto: np.ndarray | bool = False,
    config: ConsensusConfig = ConsensusConfig(),
) -> Combined:
    """Consensus from agent arrays shaped (..., agents); see the module docstring."""
    d = np.asarray(direction, dtype=np.float64)
    weight = np.broadcast_to(np.asarray(weight, dtype=np.float64), d.shape)
    hit_mean = np.broadcast_to(np.asarray(hit_mean, dtype=np.float64), d.shape)
    hz = np.broadcast_to(np.asarray(horizon, dtype=np.float64), d.shape)
    active = (d != 0) & (weight > 0)
    push = np.where(active, weight * np.asarray(confidence, dtype=np.float64), 0.0)
    score = (push * d).sum(axis=-1)
    total = push.sum(axis=-1)
    lean = np.sign(score)
    backing = active & (d == lean[..., None]) & (lean[..., None] != 0)
    back = np.where(backing, push, 0.0)
    back_sum = back.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        agreement = np.where(total > 0, back_sum / total, 0.0)
        conf = np.where(back_sum > 0, (back * hit_mean).sum(axis=-1) / back_sum, 0.0)
        hzn = np.where(back_sum > 0, (back * hz).sum(axis=-1) / back_sum, 0.0)
    voters = active.sum(axis=-1)
    raw_voters = (d != 0).sum(axis=-1)
    veto = np.broadcast_to(np.asarray(veto, dtype=bool), score.shape)
    reason = np.select(
        [
            raw_voters < config.quorum,
            voters < config.quorum,
            (total <= 0) | (lean == 0),
            agreement < config.agreement,
            veto,
        ],
        [1, 2, 3, 4, 5],
        default=0,
    ).astype(np.int8)
    decided = np.where(reason == 0, lean, 0).astype(np.int8)
    return Combined(
        direction=decided,
        leaning=lean.astype(np.int8),
        confidence=np.where(reason == 0, conf, 0.0),
        agreement=agreement,
        score=score,
        voters=voters,
        raw_voters=raw_voters,
        horizon=np.maximum(1, np.rint(hzn)).astype(np.int64),
        reason=reason,
    )


@dataclass(frozen=True, slots=True)
class WeightedVote:
    vote: Vote
    weight: float  # log-odds weight from the track record
    hit_rate: float  # posterior mean hit rate used for the weight


@dataclass(frozen=True, slots=True)
class ConsensusDecision:
    """The consensus at one bar, with every agent's vote and weight."""

    direction: Direction
    confidence: float  # see module docstring; 0 when flat
    agreement: float  # winning side's share of the weighted push
    score: float
    horizon: int
    votes: tuple[WeightedVote, ...]
    risk: RiskVote | None
    vetoed: bool
    explanation_key: str
    values: Mapping[str, float | int | str] = field(default_factory=dict)
    time: int = 0
    price: float = math.nan
    atr: float = math.nan


def decide(
    votes: Sequence[Vote],
    stats: Mapping[str, AgentStats],
    risk: RiskVote | None = None,
    config: ConsensusConfig = ConsensusConfig(),
) -> ConsensusDecision:
    """Consensus of ``votes`` (same bar) using each agent's stats (missing = prior)."""
    means = [stats[v.agent].mean if v.agent in stats else PRIOR_ALPHA / (PRIOR_ALPHA + PRIOR_BETA) for v in votes]
    weights = [log_odds_weight(m) for m in means]
    out = combine(
        np.array([v.direction.sign for v in votes], dtype=np.float64),
        np.array([v.confidence for v in votes]),
        np.array(weights),
        np.array(means),
        np.array([v.horizon for v in votes], dtype=np.float64),
        veto=bool(risk.veto) if risk is not None else False,
        config=config,
    )
    reason = REASONS[int(out.reason)]
    lean = Direction.from_sign(int(out.leaning))
    values: dict[str, float | int | str] = {
        "voters": int(out.raw_voters),
        "weighted_voters": int(out.voters),
        "quorum": config.quorum,
        "agreement": float(out.agreement),
        "threshold": config.agreement,
        "leaning": lean.value,
        "for": sum(1 for v, w in zip(votes, weights) if w > 0 and v.direction is lean and lean is not Direction.FLAT),
        "against": sum(
            1 for v, w in zip(votes, weights) if w > 0 and v.direction not in (lean, Direction.FLAT)
        ),
    }
    if reason == "consensus.agree":
        values["confidence"] = float(out.confidence)
    if risk is not None and reason == "consensus.vetoed":
        values["veto_key"] = risk.rationale_key
    first = votes[0] if votes else None
    return ConsensusDecision(
        direction=Direction.from_sign(int(out.direction)),
        confidence=float(out.confidence),
        agreement=float(out.agreement),
        score=float(out.score),
        horizon=int(out.horizon),
        votes=tuple(WeightedVote(v, float(w), float(m)) for v, w, m in zip(votes, weights, means)),
        risk=risk,
        vetoed=reason == "consensus.vetoed",
        explanation_key=reason,
        values=values,
        time=first.time if first else 0,
        price=first.price if first else math.nan,
        atr=first.atr if first else math.nan,
    )
