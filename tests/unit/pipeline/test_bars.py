"""BarAggregator against a brute-force recomputation from the accepted ticks."""

from __future__ import annotations

import dataclasses
import random
from collections import defaultdict

import pytest

from domain.market.bars import TIMEFRAMES, BarAggregator, BarClosed
from domain.market.models import Bar, Tick, Timeframe

T0 = 1_700_000_000_000 - 1_700_000_000_000 % 86_400_000 + 3_600_000 * 22  # 22:00 UTC, close to a D1 edge
POINT = 0.00001


def _feed(seed: int, n: int = 4000) -> list[Tick]:
    """Ticks over 3 symbols with gaps, duplicates and out-of-order arrivals."""
    rng = random.Random(seed)
    names = ["EURUSD", "GBPUSD", "XAUUSD"]
    price = {"EURUSD": 1.1, "GBPUSD": 1.27, "XAUUSD": 1950.0}
    t = T0
    out: list[Tick] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.01:
            t += rng.randrange(600_000, 4 * 3_600_000)  # a gap of 10 min to 4 h
        elif r < 0.03:
            t += rng.randrange(55_000, 65_000)  # about one minute
        else:
            t += rng.randrange(0, 3_000)
        sym = rng.choice(names)
        price[sym] = round(price[sym] * (1 + rng.gauss(0, 2e-4)), 5)
        tick = Tick(sym, t, price[sym], round(price[sym] + rng.randrange(1, 30) * POINT, 5))
        out.append(tick)
        if rng.random() < 0.03:
            out.append(tick)  # exact duplicate
        if rng.random() < 0.03 and len(out) > 5:
            old = out[-rng.randrange(2, 6)]
            out.append(Tick(old.symbol, old.time_msc - rng.randrange(1, 90_000), old.bid, old.ask))  # late
    return out


def _accepted(ticks: list[Tick]) -> tuple[dict[str, list[Tick]], int, int]:
    kept: dict[str, list[Tick]] = defaultdict(list)
    late = dups = 0
    for tick in ticks:
        seen = kept[tick.symbol]
        if seen and tick.time_msc < seen[-1].time_msc:
            late += 1
        elif seen and tick == seen[-1]:
            dups += 1
        else:
            seen.append(tick)
    return kept, late, dups


def _brute_bars(ticks: list[Tick], tf: Timeframe) -> list[Bar]:
    groups: dict[int, list[Tick]] = {}
    for tick in ticks:
        start = tick.time_msc // 1000 // tf.seconds * tf.seconds
        groups.setdefault(start, []).append(tick)
    bars = []
    for start, group in groups.items():
        bids = [x.bid for x in group]
        spread = round(min(x.ask - x.bid for x in group) / POINT)
        bars.append(Bar(start, bids[0], max(bids), min(bids), bids[-1], len(group), spread))
    return bars


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bars_match_brute_force_on_every_timeframe(seed: int) -> None:
    ticks = _feed(seed)
    agg = BarAggregator(history=10_000, points={"EURUSD": POINT, "GBPUSD": POINT, "XAUUSD": POINT})
    events = agg.feed(ticks)

    kept, late, dups = _accepted(ticks)
    assert late > 50 and dups > 50  # the feed really exercises both paths
    assert (agg.late, agg.duplicates, agg.invalid) == (late, dups, 0)
    for sym, sym_ticks in kept.items():
        for tf in TIMEFRAMES:
            expected = _brute_bars(sym_ticks, tf)
            assert len(expected) > 1
            assert agg.bars(sym, tf) == expected[:-1], (sym, tf)
            assert agg.current(sym, tf) == expected[-1], (sym, tf)
            assert all(b.time % tf.seconds == 0 for b in expected)
            emitted = [e.bar for e in events if e.symbol == sym and e.timeframe is tf]
            assert emitted == expected[:-1]


def test_higher_timeframes_are_resampled_m1() -> None:
    ticks = _feed(7, n=6000)
    agg = BarAggregator(history=20_000)
    agg.feed(ticks)
    m1 = agg.bars("XAUUSD", Timeframe.M1, include_current=True)
    for tf in TIMEFRAMES[1:]:
        groups: dict[int, list[Bar]] = {}
        for b in m1:
            groups.setdefault(b.time - b.time % tf.seconds, []).append(b)
        resampled = [
            Bar(start, g[0].open, max(b.high for b in g), min(b.low for b in g), g[-1].close,
                sum(b.tick_volume for b in g), min(b.spread for b in g))
            for start, g in groups.items()
        ]
        assert agg.bars("XAUUSD", tf, include_current=True) == resampled


def test_close_events_come_in_timeframe_order_when_a_day_ends() -> None:
    day = 86_400_000
    base = 20_000 * day  # midnight UTC
    agg = BarAggregator()
    agg.on_tick(Tick("EURUSD", base + day - 1_000, 1.10, 1.1001))  # 23:59:59
    events = agg.feed([Tick("EURUSD", base + day + 5_000, 1.11, 1.1101)])  # next day 00:00:05
    assert [e.timeframe for e in events] == list(TIMEFRAMES)
    assert {e.bar.time for e in events} == {
        (base + day - 60_000) // 1000, (base + day - 300_000) // 1000, (base + day - 900_000) // 1000,
        (base + day - 3_600_000) // 1000, (base + day - 14_400_000) // 1000, base // 1000,
    }
    assert all(e.bar.open == e.bar.close == 1.10 and e.bar.tick_volume == 1 for e in events)
    d1 = agg.current("EURUSD", Timeframe.D1)
    assert d1 == Bar((base + day) // 1000, 1.11, 1.11, 1.11, 1.11, 1, 0)


def test_gap_leaves_no_empty_bars() -> None:
    agg = BarAggregator()
    t = 30_000 * 86_400_000
    agg.feed([Tick("X", t + 1_000, 1.0, 1.1), Tick("X", t + 7_200_000 + 1_000, 2.0, 2.1)])
    assert [b.time for b in agg.bars("X", Timeframe.M1)] == [t // 1000]
    assert [b.time for b in agg.bars("X", Timeframe.H1)] == [t // 1000]
    assert agg.current("X", Timeframe.H1).time == (t + 7_200_000) // 1000


def test_advance_closes_quiet_symbols_and_makes_older_ticks_late() -> None:
    t = 30_000 * 86_400_000
    seen: list[BarClosed] = []
    agg = BarAggregator(on_close=seen.append)
    agg.on_tick(Tick("X", t + 10_000, 1.0, 1.0))
    agg.on_tick(Tick("X", t + 20_000, 1.2, 1.2))
    assert agg.advance(t + 59_999) == []  # the minute is not over
    closed = agg.advance(t + 61_000)
    assert [(e.timeframe, e.bar) for e in closed] == [(Timeframe.M1, Bar(t // 1000, 1.0, 1.2, 1.0, 1.2, 2, 0))]
    assert seen == closed
    agg.on_tick(Tick("X", t + 50_000, 0.5, 0.5))  # belongs to the bar already closed
    assert agg.late == 1
    agg.on_tick(Tick("X", t + 62_000, 1.5, 1.5))  # same minute as "now": a new bar
    assert agg.current("X", Timeframe.M1) == Bar(t // 1000 + 60, 1.5, 1.5, 1.5, 1.5, 1, 0)
    assert agg.current("X", Timeframe.M5) == Bar(t // 1000, 1.0, 1.5, 1.0, 1.5, 3, 0)
    closed = agg.advance(t + 3_600_000)
    assert [e.timeframe for e in closed] == [Timeframe.M1, Timeframe.M5, Timeframe.M15, Timeframe.H1]


def test_invalid_bids_are_refused_and_history_is_bounded() -> None:
    agg = BarAggregator(history=3, timeframes=[Timeframe.M1, Timeframe.H1])
    agg.feed([Tick("X", i * 60_000, 1.0 + i, 1.0 + i) for i in range(10)])
    agg.feed([Tick("X", 10 * 60_000, 0.0, 1.0), Tick("X", 10 * 60_000, float("nan"), 1.0)])
    assert agg.invalid == 2
    assert [b.open for b in agg.bars("X", Timeframe.M1)] == [7.0, 8.0, 9.0]
    assert agg.bars("X", Timeframe.M1, 2) == agg.bars("X", Timeframe.M1)[-2:]
    assert agg.timeframes == (Timeframe.M1, Timeframe.H1)
    with pytest.raises(KeyError):
        agg.bars("X", Timeframe.D1)


def test_closed_bars_and_events_are_plain_frozen_values() -> None:
    agg = BarAggregator(points={"X": 0.01})
    events = agg.feed([Tick("X", 1_000, 1.0, 1.02), Tick("X", 30_000, 1.5, 1.51), Tick("X", 61_000, 2.0, 2.01)])
    assert len(events) == 1
    event = events[0]
    expected = Bar(0, 1.0, 1.5, 1.0, 1.5, 2, 1)
    assert type(event) is BarClosed and type(event.bar) is Bar
    assert event == BarClosed("X", Timeframe.M1, expected) and hash(event.bar) == hash(expected)
    assert agg.bars("X", Timeframe.M1) == [expected]
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.bar.close = 3.0  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.symbol = "Y"  # type: ignore[misc]
