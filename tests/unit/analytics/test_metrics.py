"""Metrics on a hand-computed deal set: every expected number below is worked out by hand in the comments."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from domain.analytics import metrics as m
from domain.analytics.metrics import Period
from domain.market.models import Deal, Side

T0 = 19675 * 86_400  # 2023-11-14 00:00 UTC, a day boundary
D = 86_400


def deal(ticket: int, pos: int, symbol: str, entry: str, t: int, profit: float = 0.0, commission: float = 0.0,
         swap: float = 0.0) -> Deal:  # fmt: skip
    return Deal(ticket, ticket, pos, symbol, Side.BUY, entry, 0.1, 1.0, profit, commission, swap, t)


DEALS = [
    # EURUSD #1: +100, commissions -2 in and -2 out → +96
    deal(1, 1, "EURUSD", "in", T0 + 3600, commission=-2),
    deal(2, 1, "EURUSD", "out", T0 + 7200, profit=100, commission=-2),
    # EURUSD #2: -50, commission -1 (in), swap -1 (out) → -52
    deal(3, 2, "EURUSD", "in", T0 + D + 3600, commission=-1),
    deal(4, 2, "EURUSD", "out", T0 + D + 7200, profit=-50, swap=-1),
    # XAUUSD #3: +30
    deal(5, 3, "XAUUSD", "in", T0 + 2 * D + 100),
    deal(6, 3, "XAUUSD", "out", T0 + 2 * D + 150, profit=30),
    # GBPUSD #4 still open: commission -3 counts in net P/L only
    deal(7, 4, "GBPUSD", "in", T0 + 2 * D + 200, commission=-3),
    # USDJPY #5: -10
    deal(8, 5, "USDJPY", "in", T0 + 2 * D + 300),
    deal(9, 5, "USDJPY", "out", T0 + 2 * D + 400, profit=-10),
]

EQUITY = [
    (T0, 1000.0),
    (T0 + 43_200, 1100.0),
    (T0 + D + 100, 1050.0),
    (T0 + D + 200, 990.0),
    (T0 + 2 * D + 50, 1080.0),
    (T0 + 3 * D, 1026.0),
]


def test_trade_results_include_opening_costs() -> None:
    assert [(t.symbol, t.result) for t in m.trades(DEALS)] == [
        ("EURUSD", 96.0), ("EURUSD", -52.0), ("XAUUSD", 30.0), ("USDJPY", -10.0)
    ]  # fmt: skip
    assert m.open_costs(DEALS) == -3.0


def test_metrics_by_hand() -> None:
    r = m.compute(DEALS, EQUITY)
    assert (r.trades, r.wins, r.losses) == (4, 2, 2)
    assert r.net == 61.0  # 96 - 52 + 30 - 10 - 3
    assert r.gross_profit == 126.0 and r.gross_loss == 62.0
    assert r.costs == -9.0  # -2 -2 -1 -1 -3
    assert r.win_rate == 50.0
    assert r.profit_factor == 2.03  # 126 / 62 = 2.032
    assert r.avg_win == 63.0 and r.avg_loss == -31.0
    assert r.expectancy == 16.0  # (96 - 52 + 30 - 10) / 4
    assert r.return_pct == 6.1  # 61 / 1000
    assert r.max_drawdown == 110.0  # peak 1100 → trough 990
    assert r.max_drawdown_pct == 10.0  # 110 / 1100
    assert r.best_symbol == "EURUSD" and r.worst_symbol == "USDJPY"
    assert r.start_equity == 1000.0 and r.end_equity == 1026.0


def test_sharpe_and_sortino_from_daily_closes() -> None:
    # daily closes: seed 1000, day0 1100, day1 990, day2 1080, day3 1026
    rets = [0.1, -0.1, 90 / 990, -54 / 1080]
    assert m.daily_returns(EQUITY).tolist() == pytest.approx(rets)
    mean = sum(rets) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in rets) / 3)
    downside = math.sqrt((0.1**2 + 0.05**2) / 4)
    r = m.compute(DEALS, EQUITY)
    assert r.sharpe == round(mean / sd * math.sqrt(252), 2) == 1.61
    assert r.sortino == round(mean / downside * math.sqrt(252), 2) == 2.90


def test_per_symbol_breakdown() -> None:
    rows = {s.symbol: s for s in m.by_symbol(m.trades(DEALS))}
    assert [s.symbol for s in m.by_symbol(m.trades(DEALS))] == ["EURUSD", "XAUUSD", "USDJPY"]
    eur = rows["EURUSD"]
    assert (eur.trades, eur.wins, eur.net, eur.win_rate, eur.profit_factor) == (2, 1, 44.0, 50.0, 1.85)  # 96/52
    assert rows["XAUUSD"].profit_factor is None  # no losing trade
    assert rows["USDJPY"].win_rate == 0.0 and rows["USDJPY"].gross_loss == 10.0


def test_drawdown_series_and_extremes() -> None:
    series = m.drawdown_series(EQUITY)
    assert [t for t, _ in series] == [t for t, _ in EQUITY]
    assert [v for _, v in series] == pytest.approx([0, 0, -50 / 11, -10, -20 / 11, -74 / 11], abs=1e-4)
    dd = m.drawdown(EQUITY)
    assert (dd.peak_time, dd.trough_time) == (T0 + 43_200, T0 + D + 200)
    assert m.drawdown([(1, 5.0), (2, 6.0)]) == m.Drawdown(0.0, 0.0, None, None)


def test_max_drawdown_money_and_percent_come_from_one_episode() -> None:
    # 100 → 50 is a 50 % fall of 50; 1000 → 900 a bigger money fall (100) but only 10 %
    equity = [(T0 + i * 3600, v) for i, v in enumerate((100.0, 50.0, 1000.0, 900.0, 950.0))]
    dd = m.drawdown(equity)
    assert dd == m.Drawdown(50.0, 50.0, T0, T0 + 3600)
    r = m.compute([], equity)
    assert (r.max_drawdown, r.max_drawdown_pct) == (50.0, 50.0)  # never "100 (50 %)"
    assert (r.max_drawdown_peak, r.max_drawdown_trough) == (T0, T0 + 3600)
    # the deeper episode in percent wins even when it comes later and loses less money
    later = [(T0 + i, v) for i, v in enumerate((1000.0, 800.0, 900.0, 100.0, 40.0))]
    assert m.drawdown(later) == m.Drawdown(960.0, 96.0, T0, T0 + 4)
    late = [(T0 + i, v) for i, v in enumerate((1000.0, 900.0, 1000.0, 200.0, 50.0, 30.0, 60.0))]
    assert m.drawdown(late) == m.Drawdown(970.0, 97.0, T0, T0 + 5)
    # equal percentages: the larger money fall
    tie = [(T0 + i, v) for i, v in enumerate((100.0, 90.0, 1000.0, 900.0))]
    assert m.drawdown(tie) == m.Drawdown(100.0, 10.0, T0 + 2, T0 + 3)
    assert m.deepest_drawdown(np.array([1.0, 2.0, 3.0])) is None


def test_empty_inputs_do_not_crash() -> None:
    r = m.compute([], [])
    assert (r.trades, r.net, r.win_rate, r.profit_factor, r.sharpe, r.return_pct) == (0, 0.0, None, None, None, None)
    assert r.best_symbol is None and r.worst_symbol is None
    assert m.drawdown_series([]) == [] and m.balance_curve([], 100.0) == []
    only_wins = m.compute([deal(1, 1, "EURUSD", "out", T0, profit=5)], [(T0, 100.0), (T0 + 1, 105.0)])
    assert only_wins.profit_factor is None and only_wins.worst_symbol is None and only_wins.sharpe is None


def test_balance_curve_reconstructed_backwards() -> None:
    deals = [deal(1, 1, "X", "in", 10, commission=-1), deal(2, 1, "X", "out", 20, profit=50),
             deal(3, 2, "X", "out", 30, profit=-20)]  # fmt: skip
    # flows -1, +50, -20 (sum 29) from a balance of 1029 now → 1000 before the first deal
    assert m.balance_curve(deals, 1029.0) == [(9, 1000.0), (10, 999.0), (20, 1049.0), (30, 1029.0)]
    assert m.merge_curves([(9, 1000.0), (10, 999.0), (20, 1049.0)], [(15, 1010.0), (25, 1040.0)]) == [
        (9, 1000.0), (10, 999.0), (15, 1010.0), (25, 1040.0)
    ]  # fmt: skip


def test_buy_and_hold_and_median() -> None:
    assert m.buy_and_hold({"A": (100.0, 110.0), "B": (50.0, 47.5)}) == 2.5  # (+10% - 5%) / 2
    assert m.buy_and_hold({}) is None
    assert m.median([3.0, 1.0, 2.0, 10.0]) == 2.5 and m.median([]) is None


def test_periods_start_in_the_users_time_zone() -> None:
    now = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    assert Period.TODAY.start(now, "Europe/Moscow") == datetime(2026, 11, 22, 21, 0, tzinfo=UTC)
    assert Period.WEEK.start(now, "Europe/Moscow") == datetime(2026, 11, 16, 21, 0, tzinfo=UTC)
    assert Period.MONTH.start(now, "Europe/Moscow") == datetime(2026, 10, 24, 21, 0, tzinfo=UTC)
    assert Period.TODAY.start(now, "Not/AZone") == datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert Period.ALL.start(now) is None
    assert Period.parse(None) is Period.MONTH and Period.parse(" Week ") is Period.WEEK
    assert Period.parse("yesterday") is None


def test_columnar_deal_stats_equal_the_per_deal_definitions() -> None:
    import random
    from collections import Counter

    rng = random.Random(7)
    for _ in range(50):
        deals, ticket = [], 0
        for pos in range(rng.randint(0, 40)):
            symbol = rng.choice(["EURUSD", "GBPUSD", "XAUUSD", "USDJPY", "AUDUSD", "BTCUSD", "NZDUSD"])
            t = rng.randint(0, 50) * 3600
            ticket += 1
            deals.append(deal(ticket, pos, symbol, "in", t, commission=-rng.randint(0, 3), swap=-rng.randint(0, 1)))
            for k in range(rng.choice([0, 1, 1, 2])):  # still open, closed, or closed in two parts
                ticket += 1
                deals.append(deal(ticket, pos, symbol, rng.choice(["out", "out", "inout"]), t + 60 * (k + 1),
                                  profit=rng.randint(-100, 100), commission=-rng.randint(0, 2)))  # fmt: skip
        rng.shuffle(deals)
        stats = m.deal_stats(deals, top=3)
        items = m.trades(deals)
        results = [t.result for t in items]
        assert stats.trades == len(items) and stats.wins == sum(r > 0 for r in results)
        assert stats.net == pytest.approx(sum(results) + m.open_costs(deals))
        assert stats.costs == pytest.approx(sum(d.commission + d.swap for d in deals))
        assert stats.symbols == m.by_symbol(items)
        assert stats.first_trade == (items[0].time if items else None)
        counts = Counter(t.symbol for t in items)
        assert stats.most_traded == tuple(sorted(s for s, _n in counts.most_common(3)))
        half = len(deals) // 2
        cols = m.DealColumns.of(deals[:half]).merged(m.DealColumns.of(deals[half:]))
        assert cols.ticket.tolist() == [d.ticket for d in sorted(deals, key=lambda d: (d.time, d.ticket))]
        assert m.deal_stats(cols, top=3) == stats
