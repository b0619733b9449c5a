"""Vectorized indicators against the per-bar pure-Python references."""

from __future__ import annotations

import numpy as np
import pytest

from domain.agents import indicators as ind
from tests import agents_reference as ref
from domain.agents.series import Series

from .conftest import perturb_after, synthetic


def close_to(got: np.ndarray, want: list[float], rtol: float = 1e-9, atol: float = 1e-11) -> None:
    w = np.array(want, dtype=np.float64)
    assert got.shape == w.shape
    assert np.array_equal(np.isnan(got), np.isnan(w)), "warmup (NaN) pattern differs"
    np.testing.assert_allclose(got[~np.isnan(w)], w[~np.isnan(w)], rtol=rtol, atol=atol)


@pytest.fixture(scope="module")
def bars(eurusd: Series) -> tuple[list[float], list[float], list[float]]:
    s = eurusd[:2500]
    return s.high.tolist(), s.low.tolist(), s.close.tolist()


def test_sma_ema(bars) -> None:
    _, _, c = bars
    for n in (1, 5, 20, 50):
        close_to(ind.sma(c, n), ref.sma(c, n))
        close_to(ind.ema(c, n), ref.ema(c, n))


def test_rsi_atr_adx(bars) -> None:
    h, lo, c = bars
    close_to(ind.rsi(c, 14), ref.rsi(c, 14))
    close_to(ind.true_range(h, lo, c), ref.true_range(h, lo, c))
    close_to(ind.atr(h, lo, c, 14), ref.atr(h, lo, c, 14))
    for got, want in zip(ind.adx(h, lo, c, 14), ref.adx(h, lo, c, 14)):
        close_to(got, want)


def test_bollinger_macd_roc_donchian(bars) -> None:
    h, lo, c = bars
    for got, want in zip(ind.bollinger(c, 20, 2.0), ref.bollinger(c, 20, 2.0)):
        close_to(got, want)
    for got, want in zip(ind.macd(c), ref.macd(c)):
        close_to(got, want, atol=1e-12)
    close_to(ind.roc(c, 10), ref.roc(c, 10))
    for got, want in zip(ind.donchian(h, lo, 20), ref.donchian(h, lo, 20)):
        close_to(got, want, rtol=0, atol=0)


def test_percentile_rank(bars) -> None:
    h, lo, c = bars
    a = ind.atr(h, lo, c)
    close_to(ind.percentile_rank(a, 100), ref.percentile_rank(a.tolist(), 100), rtol=0, atol=0)


def test_long_series_crosses_smoothing_blocks() -> None:
    # a fast EMA on 20,000 bars runs through several closed-form blocks
    c = synthetic(20_000, seed=3).close.tolist()
    close_to(ind.ema(c, 3), ref.ema(c, 3))
    close_to(ind.rsi(c, 2), ref.rsi(c, 2))


def test_known_values() -> None:
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    assert np.allclose(ind.sma(x, 3)[2:], [2.0, 3.0, 4.0])
    assert np.allclose(ind.ema(x, 3)[2:], [2.0, 3.0, 4.0])  # alpha .5 on a line lags by one
    assert ind.rsi(x, 2)[2] == 100.0  # only gains
    assert ind.rsi([1.0] * 5, 2)[4] == 50.0  # no movement at all
    assert np.allclose(ind.roc(x, 1)[1:], [100.0, 50.0, 100 / 3, 25.0])


def test_stacked_rows_equal_single_rows(eurusd: Series) -> None:
    a, b = eurusd[:600], eurusd[1000:1600]
    stack = np.stack([a.close, b.close])
    for fn in (lambda x: ind.ema(x, 20), lambda x: ind.rsi(x, 14), lambda x: ind.macd(x)[2],
               lambda x: ind.bollinger(x)[1]):
        both = fn(stack)
        np.testing.assert_allclose(both[0], fn(a.close), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(both[1], fn(b.close), rtol=1e-12, atol=1e-15)


def test_no_look_ahead(eurusd: Series) -> None:
    s = eurusd[:1500]
    t = 900
    p = perturb_after(s, t)
    assert not np.array_equal(s.close, p.close)
    for fn in (
        lambda q: ind.ema(q.close, 20),
        lambda q: ind.sma(q.close, 50),
        lambda q: ind.rsi(q.close),
        lambda q: ind.atr(q.high, q.low, q.close),
        lambda q: ind.adx(q.high, q.low, q.close)[0],
        lambda q: ind.bollinger(q.close)[2],
        lambda q: ind.macd(q.close)[1],
        lambda q: ind.donchian(q.high, q.low)[0],
        lambda q: ind.percentile_rank(ind.atr(q.high, q.low, q.close), 100),
    ):
        full, moved = fn(s), fn(p)
        np.testing.assert_array_equal(full[: t + 1], moved[: t + 1])
        assert not np.allclose(full[t + 1 :], moved[t + 1 :], equal_nan=True)
