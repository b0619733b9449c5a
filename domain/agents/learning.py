"""Signal resolution and the agents' track-record storage.

Resolution rule (at the horizon close). A signal issued at the close of bar
``t`` at price ``entry`` with ATR ``atr`` and horizon ``h`` is resolved by the
close of bar ``t + h``: its realized move is ``sign * (close[t+h] - entry)``.
It is a HIT when that move is positive and at least ``threshold_atr * atr``,
otherwise a MISS. The close is used rather than an intrabar touch because a
touch rule ignores what happened on the other side (a random direction would
"hit" most of the time) and because the hit then agrees with the sign of the
trade's P/L over the horizon. The largest favourable and adverse excursions
(from highs and lows) are reported beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from domain.agents.consensus import DEFAULT_DECAY, AgentStats, prior_stats, update_stats
from domain.agents.series import Series
from domain.agents.votes import Direction, Vote

DEFAULT_THRESHOLD_ATR = 0.1


@dataclass(frozen=True, slots=True)
class Signal:
    """A call worth tracking: what was said, at what price, for how long."""

    agent: str
    symbol: str
    timeframe: str
    direction: Direction
    time: int  # close of the signal bar is the entry
    entry: float
    atr: float
    horizon: int

    @classmethod
    def from_vote(cls, vote: Vote, symbol: str, timeframe: str) -> Signal:
        if vote.direction is Direction.FLAT:
            raise ValueError("a flat vote is not a signal")
        return cls(vote.agent, symbol, timeframe, vote.direction, vote.time, vote.price, vote.atr, vote.horizon)


@dataclass(frozen=True, slots=True)
class Resolution:
    signal: Signal
    hit: bool
    move: float  # signed in the signal's direction, price units
    move_atr: float  # move / ATR at entry
    max_favorable: float  # best excursion in the signal's direction (price units, >= 0 when reached)
    max_adverse: float  # worst excursion against it (price units, >= 0 when reached)
    exit_price: float
    exit_time: int


def resolve(signal: Signal, after: Series, threshold_atr: float = DEFAULT_THRESHOLD_ATR) -> Resolution | None:
    """Resolve ``signal`` with the bars that opened after its bar; None if too few yet."""
    later = np.flatnonzero(after.time > signal.time)
    if later.size < signal.horizon or signal.direction is Direction.FLAT:
        return None
    window = later[: signal.horizon]
    s = signal.direction.sign
    exit_price = float(after.close[window[-1]])
    move = s * (exit_price - signal.entry)
    hi, lo = float(after.high[window].max()), float(after.low[window].min())
    fav = (hi - signal.entry) if s > 0 else (signal.entry - lo)
    adv = (signal.entry - lo) if s > 0 else (hi - signal.entry)
    return Resolution(
        signal=signal,
        hit=is_hit(move, signal.atr, threshold_atr),
        move=move,
        move_atr=move / signal.atr if signal.atr > 0 else math.nan,
        max_favorable=fav,
        max_adverse=adv,
        exit_price=exit_price,
        exit_time=int(after.time[window[-1]]),
    )


def is_hit(move: float, atr: float, threshold_atr: float = DEFAULT_THRESHOLD_ATR) -> bool:
    return bool(move > 0 and move >= threshold_atr * atr)


def hits_at(
    close: np.ndarray,
    index: np.ndarray,
    sign: np.ndarray,
    atr: np.ndarray,
    horizon: np.ndarray | int,
    threshold_atr: float = DEFAULT_THRESHOLD_ATR,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized resolution of signals at bar ``index``: (hit, signed move).

    Every ``index + horizon`` must be a valid bar of ``close``.
    """
    exit_idx = np.asarray(index) + np.asarray(horizon)
    move = np.asarray(sign) * (close[exit_idx] - close[index])
    hit = (move > 0) & (move >= threshold_atr * np.asarray(atr))
    return hit, move


class StatsRepository(Protocol):
    """Persistence of ``AgentStats``; the use case commits, the repository never does."""

    async def get(self, agent: str, symbol: str, timeframe: str) -> AgentStats | None: ...

    async def put(self, stats: AgentStats) -> None: ...

    async def list_for(self, symbol: str, timeframe: str) -> Sequence[AgentStats]: ...


class InMemoryStatsRepository:
    """Dictionary-backed ``StatsRepository`` for tests and the console."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str], AgentStats] = {}

    async def get(self, agent: str, symbol: str, timeframe: str) -> AgentStats | None:
        return self._rows.get((agent, symbol, timeframe))

    async def put(self, stats: AgentStats) -> None:
        self._rows[(stats.agent, stats.symbol, stats.timeframe)] = stats

    async def list_for(self, symbol: str, timeframe: str) -> list[AgentStats]:
        return sorted(
            (s for (_, sym, tf), s in self._rows.items() if sym == symbol and tf == timeframe),
            key=lambda s: s.agent,
        )


async def record_resolution(
    repo: StatsRepository, resolution: Resolution, decay: float = DEFAULT_DECAY
) -> AgentStats:
    """Fold one resolved signal into its agent's stats and store them."""
    sig = resolution.signal
    current = await repo.get(sig.agent, sig.symbol, sig.timeframe) or prior_stats(sig.agent, sig.symbol, sig.timeframe)
    updated = update_stats(current, resolution.hit, decay, now=resolution.exit_time)
    await repo.put(updated)
    return updated


async def stats_map(repo: StatsRepository, symbol: str, timeframe: str) -> dict[str, AgentStats]:
    """Stats keyed by agent name, as ``consensus.decide`` takes them."""
    return {s.agent: s for s in await repo.list_for(symbol, timeframe)}
