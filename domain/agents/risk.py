"""The Risk agent: volatility regime, veto, and position sizing.

It has no market direction, so it returns a ``RiskVote`` rather than a
``Vote``: whether to veto, the volatility regime behind it, the ATR-based stop
distance, and (given the user's budget and the symbol's contract numbers) the
volume to trade.

Volatility regime: the percentile rank of ATR/close among the previous
``lookback`` bars. At or above ``veto_percentile`` the agent vetoes; it also
vetoes while it lacks the history to judge, and when the budget cannot buy the
symbol's minimum volume.

Sizing: ``risk money = equity * risk_pct / 100``; the loss of one lot at the
stop is ``stop_distance / tick_size * tick_value``; volume = risk money / that
loss, rounded DOWN to the volume step and capped at the maximum volume, so the
loss at the stop never exceeds the budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from domain.agents.indicators import IndicatorSet, atr, percentile_rank
from domain.agents.series import Bars, Series
from domain.market.models import SymbolSpec

REGIMES = ("warmup", "low", "normal", "high", "extreme")


@dataclass(frozen=True, slots=True)
class RiskBudget:
    """The user's risk appetite: account equity and percent of it risked per trade."""

    equity: float
    risk_pct: float


@dataclass(frozen=True, slots=True)
class SizingSpec:
    """Contract numbers for sizing, in the account currency.

    ``tick_value`` is the profit/loss of one lot when price moves by
    ``tick_size`` (MT5 ``trade_tick_value`` / ``trade_tick_size``).
    """

    tick_size: float
    tick_value: float
    volume_min: float
    volume_max: float
    volume_step: float

    @classmethod
    def from_symbol(cls, spec: SymbolSpec, quote_to_account: float = 1.0) -> SizingSpec:
        """Derive tick value from the contract size; ``quote_to_account`` converts the
        profit currency into the account currency (1.0 when they match)."""
        return cls(
            tick_size=spec.point,
            tick_value=spec.contract_size * spec.point * quote_to_account,
            volume_min=spec.volume_min,
            volume_max=spec.volume_max,
            volume_step=spec.volume_step,
        )


@dataclass(frozen=True, slots=True)
class Sizing:
    volume: float  # lots; 0 when the budget cannot afford the minimum
    risk_money: float  # the budget: equity * risk_pct / 100
    loss_per_lot: float  # loss of one lot if the stop is hit
    loss_at_stop: float  # volume * loss_per_lot (<= risk_money)
    capped: bool  # volume was limited by volume_max
    reason_key: str  # risk.ok | risk.capped | risk.budget_too_small | risk.budget_invalid


def _step_decimals(step: float) -> int:
    return max(0, min(10, -math.floor(math.log10(step)) + 2))


def position_size(equity: float, risk_pct: float, stop_distance: float, spec: SizingSpec) -> Sizing:
    """Volume risking at most ``risk_pct`` % of ``equity`` if price moves ``stop_distance``."""
    if not (equity > 0 and risk_pct > 0 and stop_distance > 0 and spec.tick_size > 0 and spec.tick_value > 0):
        return Sizing(0.0, max(0.0, equity * risk_pct / 100.0), math.nan, 0.0, False, "risk.budget_invalid")
    risk_money = equity * risk_pct / 100.0
    loss_per_lot = stop_distance / spec.tick_size * spec.tick_value
    raw = risk_money / loss_per_lot
    step = spec.volume_step
    dec = _step_decimals(step)
    # floor to the step; the epsilon absorbs binary noise like 0.3/0.01 = 29.999...
    volume = round(math.floor(raw / step + 1e-9) * step, dec)
    capped = volume > spec.volume_max
    if capped:
        volume = round(math.floor(spec.volume_max / step + 1e-9) * step, dec)
    if volume < spec.volume_min or volume <= 0:
        return Sizing(0.0, risk_money, loss_per_lot, 0.0, False, "risk.budget_too_small")
    return Sizing(volume, risk_money, loss_per_lot, volume * loss_per_lot, capped, "risk.capped" if capped else "risk.ok")


@dataclass(frozen=True, slots=True)
class RiskVote:
    """The Risk agent's word at one bar."""

    agent: str
    veto: bool
    regime: str  # one of REGIMES
    atr_percentile: float  # NaN during warmup
    atr: float
    stop_distance: float  # price units, stop_atr * ATR
    sizing: Sizing | None
    rationale_key: str
    values: Mapping[str, float] = field(default_factory=dict)
    time: int = 0
    price: float = math.nan


@dataclass(frozen=True, slots=True, eq=False)
class RiskBatch:
    """Volatility veto for every bar (no budget involved)."""

    percentile: np.ndarray
    regime: np.ndarray  # int8 index into REGIMES
    veto: np.ndarray  # bool
    atr: np.ndarray
    stop_distance: np.ndarray


@dataclass(frozen=True, slots=True)
class RiskAgent:
    """Vetoes in extreme volatility, sizes positions from the user's budget."""

    name: str = "risk"
    atr_period: int = 14
    lookback: int = 250
    low_percentile: float = 0.25
    high_percentile: float = 0.75
    veto_percentile: float = 0.95
    stop_atr: float = 2.0
    max_risk_pct: float = 5.0

    def _from_percentile(self, pct: np.ndarray, a: np.ndarray) -> RiskBatch:
        regime = np.select(
            [np.isnan(pct), pct < self.low_percentile, pct < self.high_percentile, pct < self.veto_percentile],
            [0, 1, 2, 3],
            default=4,
        ).astype(np.int8)
        veto = (regime == 0) | (regime == 4)
        return RiskBatch(pct, regime, veto, a, self.stop_atr * a)

    def batch(self, bars: Bars, ind: IndicatorSet | None = None) -> RiskBatch:
        a = ind.atr(self.atr_period) if ind is not None and ind.bars is bars else atr(
            bars.high, bars.low, bars.close, self.atr_period
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = a / bars.close
        return self._from_percentile(percentile_rank(rel, self.lookback), a)

    def last(self, bars: Bars, ind: IndicatorSet | None = None) -> RiskBatch:
        """The last bar only: ranks one value instead of sliding over the series."""
        a = ind.atr(self.atr_period) if ind is not None and ind.bars is bars else atr(
            bars.high, bars.low, bars.close, self.atr_period
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = a / bars.close
        n = rel.shape[-1]
        if n <= self.lookback:
            pct = np.full(rel.shape[:-1] + (1,), np.nan)
        else:
            prev = rel[..., n - 1 - self.lookback : n - 1]
            cur = rel[..., n - 1 :]
            pct = (prev < cur).mean(axis=-1, keepdims=True)
            pct = np.where(np.isnan(prev).any(axis=-1, keepdims=True) | np.isnan(cur), np.nan, pct)
        return self._from_percentile(pct, a[..., -1:])

    def assess(
        self,
        series: Series,
        budget: RiskBudget | None = None,
        spec: SizingSpec | None = None,
        ind: IndicatorSet | None = None,
    ) -> RiskVote:
        """Veto and sizing at the series' last bar."""
        rb = self.last(series, ind)
        pct, a, stop = float(rb.percentile[-1]), float(rb.atr[-1]), float(rb.stop_distance[-1])
        regime = REGIMES[int(rb.regime[-1])]
        values = {k: v for k, v in (("atr_percentile", pct), ("atr", a), ("stop_distance", stop)) if math.isfinite(v)}
        values["veto_percentile"] = self.veto_percentile
        sizing = None
        key = "risk.ok"
        veto = bool(rb.veto[-1])
        if regime == "warmup":
            key = "risk.warmup"
        elif regime == "extreme":
            key = "risk.extreme_volatility"
        if budget is not None and spec is not None:
            values.update(equity=budget.equity, risk_pct=budget.risk_pct)
            if budget.risk_pct > self.max_risk_pct:
                veto, key = True, "risk.budget_over_cap"
                values["max_risk_pct"] = self.max_risk_pct
            elif not veto:
                sizing = position_size(budget.equity, budget.risk_pct, stop, spec)
                values.update(volume=sizing.volume, risk_money=sizing.risk_money, loss_at_stop=sizing.loss_at_stop)
                if sizing.volume <= 0:
                    veto = True
                key = sizing.reason_key
        return RiskVote(
            agent=self.name,
            veto=veto,
            regime=regime,
            atr_percentile=pct,
            atr=a,
            stop_distance=stop,
            sizing=sizing,
            rationale_key=key,
            values=values,
            time=int(series.time[-1]),
            price=float(series.close[-1]),
        )
