"""What an agent says: a direction, a confidence with a stated meaning, a horizon,
and the numbers behind it (a template key plus named values the bot localizes).

``VoteBatch`` is the vectorized form: the same fields as arrays over every bar
(and optionally over stacked rows); ``VoteBatch.at`` turns one cell into a
``Vote``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np


class Direction(StrEnum):
    BUY = "buy"
    SELL = "sell"
    FLAT = "flat"

    @property
    def sign(self) -> int:
        return 1 if self is Direction.BUY else -1 if self is Direction.SELL else 0

    @classmethod
    def from_sign(cls, s: int | float) -> Direction:
        return cls.BUY if s > 0 else cls.SELL if s < 0 else cls.FLAT


@dataclass(frozen=True, slots=True)
class Vote:
    """One agent's call at one bar (evaluated at that bar's close).

    ``confidence`` is in [0, 1] and always refers to ``direction``; each agent
    documents what it measures. A flat vote has confidence 0. ``values`` holds
    only finite numbers; ``rationale_key`` names the message template.
    """

    agent: str
    direction: Direction
    confidence: float
    horizon: int
    rationale_key: str
    values: Mapping[str, float] = field(default_factory=dict)
    time: int = 0
    price: float = math.nan
    atr: float = math.nan


@dataclass(frozen=True, slots=True, eq=False)
class VoteBatch:
    """Votes over all bars: arrays shaped like the input (time on the last axis)."""

    agent: str
    horizon: int
    direction: np.ndarray  # int8: -1 sell, 0 flat, +1 buy
    confidence: np.ndarray  # float64 in [0, 1]; 0 where flat
    key: np.ndarray  # int8 index into ``keys``
    keys: tuple[str, ...]
    values: Mapping[str, np.ndarray]
    time: np.ndarray
    price: np.ndarray
    atr: np.ndarray

    def at(self, i: int, row: int | None = None) -> Vote:
        idx: tuple[int, ...] = (i,) if row is None else (row, i)
        vals = {}
        for name, arr in self.values.items():
            v = float(arr[idx])
            if math.isfinite(v):
                vals[name] = v
        return Vote(
            agent=self.agent,
            direction=Direction.from_sign(int(self.direction[idx])),
            confidence=float(self.confidence[idx]),
            horizon=self.horizon,
            rationale_key=self.keys[int(self.key[idx])],
            values=vals,
            time=int(self.time[idx]),
            price=float(self.price[idx]),
            atr=float(self.atr[idx]),
        )

    def tail(self) -> VoteBatch:
        """Only the last bar, keeping the time axis (length 1)."""
        return VoteBatch(
            self.agent,
            self.horizon,
            self.direction[..., -1:],
            self.confidence[..., -1:],
            self.key[..., -1:],
            self.keys,
            {k: v[..., -1:] for k, v in self.values.items()},
            self.time[..., -1:],
            self.price[..., -1:],
            self.atr[..., -1:],
        )
