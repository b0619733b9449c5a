from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from domain.agents.series import Panel, Series
from domain.market.models import Bar, Timeframe


def test_csv_loads_real_bars(eurusd: Series) -> None:
    assert len(eurusd) == 5000
    assert eurusd.symbol == "EURUSD"
    assert eurusd.timeframe is Timeframe.H1
    assert eurusd.time.dtype == np.int64
    assert eurusd.time[0] == 1492592400  # 2017-04-19 09:00:00 UTC
    assert eurusd.bar(0) == Bar(1492592400, 1.0716, 1.0722, 1.07083, 1.07219, 1413.0)


def test_csv_accepts_epoch_times_and_no_volume(tmp_path: Path) -> None:
    p = tmp_path / "X.csv"
    p.write_text("time,open,high,low,close\n100,1,2,0.5,1.5\n3700,1.5,2,1,1.2\n")
    s = Series.from_csv(p)
    assert s.time.tolist() == [100, 3700]
    assert s.volume.tolist() == [0.0, 0.0]
    assert s.timeframe is Timeframe.H1


def test_from_bars_and_slicing() -> None:
    bars = [Bar(3600 * i, 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, 10.0 * i) for i in range(5)]
    s = Series.from_bars(bars, symbol="T")
    head = s[:3]
    assert len(head) == 3 and head.close.tolist() == [1.5, 2.5, 3.5]
    assert head.symbol == "T" and head.timeframe is Timeframe.H1
    assert s.bar(4) == bars[4]
    with pytest.raises(TypeError):
        s[::2]


def test_rejects_unsorted_or_nonfinite() -> None:
    with pytest.raises(ValueError):
        Series.from_arrays([2, 1], [1, 1], [1, 1], [1, 1], [1, 1])
    with pytest.raises(ValueError):
        Series.from_arrays([1, 2], [1, np.nan], [1, 1], [1, 1], [1, 1])


def test_panel_stacks_rows(eurusd: Series) -> None:
    p = Panel.stack([eurusd[:100], eurusd[100:200]])
    assert p.close.shape == (2, 100) and len(p) == 100 and p.rows == 2
    assert np.array_equal(p.row(1).close, eurusd.close[100:200])
