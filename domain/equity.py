"""Figures of an equity curve shared by the performance metrics and the backtests (numpy only, light to import)."""

from __future__ import annotations

import numpy as np

TRADING_DAYS = 252  # daily returns a year, as quantstats and empyrical annualize them


def deepest_drawdown(values: np.ndarray) -> tuple[float, float, int, int] | None:
    """``(money, percent, peak index, trough index)`` of the deepest fall below a running peak, unrounded.

    Deepest in percent of the peak; among equal percentages (or below a peak
    that is not positive, where no percentage exists) the larger money fall.
    None when the series never falls.
    """
    if len(values) < 2:
        return None
    peaks = np.maximum.accumulate(values)
    falls = peaks - values
    with np.errstate(divide="ignore", invalid="ignore"):
        pct = np.where(peaks > 0, falls / peaks * 100, 0.0)
    i = int(np.lexsort((falls, pct))[-1])  # the largest percent, ties to the larger money fall
    if not falls[i] > 0:
        return None
    return float(falls[i]), float(pct[i]), int(np.argmax(values[: i + 1])), i
