from __future__ import annotations

import numpy as np
import pytest

from domain.agents.learning import (
    InMemoryStatsRepository,
    Signal,
    hits_at,
    record_resolution,
    resolve,
    stats_map,
)
from domain.agents.series import Series
from domain.agents.votes import Direction, Vote

T0 = 1_600_000_000
# signal bar (index 0) then three bars
BARS = Series.from_arrays(
    [T0, T0 + 3600, T0 + 7200, T0 + 10800],
    [1.0000, 1.0000, 1.0020, 0.9980],
    [1.0005, 1.0030, 1.0025, 1.0020],
    [0.9995, 0.9990, 0.9970, 0.9975],
    [1.0000, 1.0020, 0.9980, 1.0015],
)


def sig(direction: Direction, horizon: int = 3, atr: float = 0.01) -> Signal:
    return Signal("trend", "EURUSD", "H1", direction, T0, 1.0, atr, horizon)


def test_buy_hits_when_close_moves_enough() -> None:
    r = resolve(sig(Direction.BUY), BARS, threshold_atr=0.1)  # needs +0.001
    assert r is not None and r.hit
    assert r.move == pytest.approx(0.0015) and r.move_atr == pytest.approx(0.15)
    assert r.exit_price == 1.0015 and r.exit_time == T0 + 10800
    assert r.max_favorable == pytest.approx(0.0030) and r.max_adverse == pytest.approx(0.0030)


def test_small_or_wrong_moves_miss() -> None:
    assert not resolve(sig(Direction.BUY), BARS, threshold_atr=0.2).hit  # needs +0.002
    s = resolve(sig(Direction.SELL), BARS)
    assert not s.hit and s.move == pytest.approx(-0.0015)
    two = resolve(sig(Direction.SELL, horizon=2), BARS)  # exits at 0.9980
    assert two.hit and two.move == pytest.approx(0.0020)
    assert two.max_favorable == pytest.approx(0.0030) and two.max_adverse == pytest.approx(0.0030)


def test_no_move_is_a_miss_even_at_zero_threshold() -> None:
    flat = Series.from_arrays([T0, T0 + 60], [1, 1], [1, 1], [1, 1], [1.0, 1.0])
    r = resolve(Signal("x", "S", "M1", Direction.BUY, T0, 1.0, 0.01, 1), flat, threshold_atr=0.0)
    assert r is not None and not r.hit


def test_unresolved_until_horizon_bars_exist() -> None:
    assert resolve(sig(Direction.BUY, horizon=4), BARS) is None
    assert resolve(sig(Direction.BUY), BARS[:3]) is None


def test_vectorized_resolution_matches() -> None:
    close = BARS.close
    hit, move = hits_at(close, np.array([0, 0]), np.array([1, -1]), np.array([0.01, 0.01]), 3, 0.1)
    assert hit.tolist() == [True, False]
    assert move == pytest.approx([0.0015, -0.0015])


def test_signal_from_vote() -> None:
    v = Vote("momentum", Direction.SELL, 0.4, 5, "momentum.down", {}, time=T0, price=1.2, atr=0.002)
    assert Signal.from_vote(v, "EURUSD", "H1") == Signal("momentum", "EURUSD", "H1", Direction.SELL, T0, 1.2, 0.002, 5)
    with pytest.raises(ValueError):
        Signal.from_vote(Vote("m", Direction.FLAT, 0.0, 5, "m.x"), "EURUSD", "H1")


async def test_in_memory_repository_records_outcomes() -> None:
    repo = InMemoryStatsRepository()
    hit = resolve(sig(Direction.BUY), BARS)
    miss = resolve(sig(Direction.SELL), BARS)
    await record_resolution(repo, hit, decay=0.9)
    s = await record_resolution(repo, miss, decay=0.9)
    assert (s.hits, s.misses, s.last_update) == (1, 1, T0 + 10800)
    assert s.alpha == pytest.approx(2.9) and s.beta == pytest.approx(3.0)
    assert await repo.get("trend", "EURUSD", "H1") == s
    assert await repo.get("trend", "EURUSD", "H4") is None
    assert [x.agent for x in await repo.list_for("EURUSD", "H1")] == ["trend"]
    assert await stats_map(repo, "EURUSD", "H1") == {"trend": s}
