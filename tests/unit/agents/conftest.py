"""Shared data for the agent tests: the real EURUSD H1 bars and seeded synthetic ones."""

from __future__ import annotations


import numpy as np
import pytest

from domain.agents.series import Series
from domain.market.sim import packaged_history
from domain.market.models import Timeframe

CSV = packaged_history()


@pytest.fixture(scope="session")
def eurusd() -> Series:
    return Series.from_csv(CSV)


def synthetic(n: int, seed: int = 1, start_price: float = 1.1, vol: float = 0.001) -> Series:
    """Seeded random-walk bars with plausible OHLC structure."""
    rng = np.random.default_rng(seed)
    close = start_price * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.concatenate([[start_price], close[:-1]])
    wick = np.abs(rng.normal(0.0, vol * start_price, (2, n)))
    high = np.maximum(open_, close) + wick[0]
    low = np.minimum(open_, close) - wick[1]
    time = 1_500_000_000 + 3600 * np.arange(n)
    return Series.from_arrays(time, open_, high, low, close, rng.integers(100, 2000, n),
                              symbol="SYN", timeframe=Timeframe.H1)


def perturb_after(series: Series, t: int, seed: int = 99) -> Series:
    """Same bars up to and including ``t``; different bars afterwards."""
    rng = np.random.default_rng(seed)
    k = len(series) - t - 1
    f = np.ones(len(series))
    f[t + 1 :] = np.exp(np.cumsum(rng.normal(0.0, 0.004, k)))
    wide = np.where(np.arange(len(series)) > t, 0.001, 0.0)  # wider ranges too
    return Series.from_arrays(series.time, series.open * f, series.high * f * (1 + wide),
                              series.low * f * (1 - wide),
                              series.close * f, series.volume, symbol=series.symbol,
                              timeframe=series.timeframe)
