from __future__ import annotations

import numpy as np
import pytest

from domain.agents.risk import RiskAgent, RiskBudget, SizingSpec, position_size
from domain.agents.series import Series
from domain.market.models import SymbolSpec

from .conftest import synthetic

EURUSD = SizingSpec(tick_size=0.00001, tick_value=1.0, volume_min=0.01, volume_max=100.0, volume_step=0.01)


def test_sizing_arithmetic() -> None:
    # 1 % of 10,000 = 100; a 30-pip stop costs 300 per lot -> 0.333 lots, rounded down
    s = position_size(10_000, 1.0, 0.0030, EURUSD)
    assert s.reason_key == "risk.ok"
    assert s.volume == 0.33
    assert s.risk_money == pytest.approx(100.0)
    assert s.loss_per_lot == pytest.approx(300.0)
    assert s.loss_at_stop == pytest.approx(99.0)
    assert s.loss_at_stop <= s.risk_money


def test_sizing_exact_step_survives_binary_noise() -> None:
    # 90 / 300 = 0.3 exactly in decimal, 29.999... steps in binary
    assert position_size(9_000, 1.0, 0.0030, EURUSD).volume == 0.30


def test_sizing_never_rounds_up() -> None:
    for equity in np.linspace(1_000, 50_000, 97):
        s = position_size(float(equity), 1.5, 0.0021, EURUSD)
        assert s.loss_at_stop <= s.risk_money + 1e-9
        assert s.risk_money - s.loss_at_stop < 0.01 * s.loss_per_lot + 1e-9  # within one step


def test_sizing_min_max_and_invalid() -> None:
    small = position_size(100, 1.0, 0.0030, EURUSD)
    assert small.volume == 0.0 and small.reason_key == "risk.budget_too_small"
    big = position_size(10_000_000, 5.0, 0.0030, EURUSD)
    assert big.volume == 100.0 and big.capped and big.reason_key == "risk.capped"
    assert position_size(0, 1.0, 0.003, EURUSD).reason_key == "risk.budget_invalid"
    assert position_size(1000, 1.0, 0.0, EURUSD).reason_key == "risk.budget_invalid"
    index_cfd = SizingSpec(tick_size=0.01, tick_value=0.01, volume_min=0.1, volume_max=50.0, volume_step=0.1)
    # a 12.5-point stop = 1250 ticks * 0.01 = 12.5 per lot; 2 % of 5,000 = 100 -> 8 lots
    assert position_size(5_000, 2.0, 12.5, index_cfd).volume == 8.0
    assert position_size(5_000, 2.0, 13.0, index_cfd).volume == 7.6  # 7.69 rounded down


def test_sizing_spec_from_symbol() -> None:
    spec = SymbolSpec("EURUSD", "Euro vs Dollar", "fx", 5, 0.00001, 100_000, 0.01, 100.0, 0.01, 10,
                      "EUR", "USD", "EUR", 1.0)
    assert SizingSpec.from_symbol(spec) == EURUSD


def spike(n: int = 600, last: int = 5) -> Series:
    s = synthetic(n, seed=5)
    h, lo = s.high.copy(), s.low.copy()
    h[-last:] += 0.02  # ranges ten times wider than usual
    lo[-last:] -= 0.02
    return Series.from_arrays(s.time, s.open, h, lo, s.close, s.volume, timeframe=s.timeframe)


def test_extreme_volatility_vetoes() -> None:
    v = RiskAgent().assess(spike(), RiskBudget(10_000, 1.0), EURUSD)
    assert v.veto and v.regime == "extreme" and v.rationale_key == "risk.extreme_volatility"
    assert v.atr_percentile == 1.0 and v.sizing is None


def test_normal_volatility_sizes() -> None:
    s = synthetic(600, seed=5)
    agent = RiskAgent()
    v = agent.assess(s, RiskBudget(10_000, 1.0), EURUSD)
    assert not v.veto and v.regime in ("low", "normal", "high")
    assert v.stop_distance == pytest.approx(2.0 * v.atr)
    assert v.sizing == position_size(10_000, 1.0, v.stop_distance, EURUSD)
    assert v.sizing.volume > 0 and v.values["volume"] == v.sizing.volume
    # without a budget it only judges volatility
    bare = agent.assess(s)
    assert not bare.veto and bare.sizing is None and bare.rationale_key == "risk.ok"


def test_veto_on_warmup_cap_and_small_budget() -> None:
    s = synthetic(600, seed=5)
    assert RiskAgent().assess(s[:200]).rationale_key == "risk.warmup"
    assert RiskAgent().assess(s[:200]).veto
    over = RiskAgent(max_risk_pct=3.0).assess(s, RiskBudget(10_000, 4.0), EURUSD)
    assert over.veto and over.rationale_key == "risk.budget_over_cap"
    tiny = RiskAgent().assess(s, RiskBudget(10, 1.0), EURUSD)
    assert tiny.veto and tiny.rationale_key == "risk.budget_too_small"


def test_last_equals_batch(eurusd: Series) -> None:
    agent = RiskAgent()
    full = agent.batch(eurusd)
    assert full.veto[:263].all()  # ATR starts at bar 13, then 250 bars of history
    for t in (300, 1234, 4999):
        one = agent.last(eurusd[: t + 1])
        assert one.veto[0] == full.veto[t]
        assert one.percentile[0] == full.percentile[t]
        assert one.regime[0] == full.regime[t]
    assert 0.0 < full.veto[300:].mean() < 0.2


def test_veto_matches_pure_python(eurusd: Series) -> None:
    from tests import agents_reference as ref

    s = eurusd[:1500]
    agent = RiskAgent()
    veto = agent.batch(s).veto
    h, lo, c = s.high.tolist(), s.low.tolist(), s.close.tolist()
    memo: dict = {}
    for i in range(0, 1500, 7):
        assert ref.risk_veto_at(agent.lookback, agent.veto_percentile, h, lo, c, i, memo) == bool(veto[i]), i
