"""Candlestick PNGs (matplotlib, Agg backend): call ``render`` off the event loop."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime

from domain.market.models import Bar
from domain.plotting import matplotlib

UP, DOWN, LEVEL = "#26a69a", "#ef5350", "#ff9800"


MARK = "#ffb300"


def render(title: str, bars: Sequence[Bar], levels: Sequence[float], digits: int, mark: str | None = None) -> bytes:
    """A PNG of ``bars`` (oldest first) with horizontal lines at ``levels``; ``mark`` (the "simulated data"
    label) is drawn across the top right and kept in the PNG's Description text chunk."""
    mpl = matplotlib()
    fig = mpl.figure.Figure(figsize=(10, 5.6), dpi=100, facecolor="#131722")
    ax = fig.add_subplot(1, 1, 1, facecolor="#131722")
    width = 0.7
    for i, bar in enumerate(bars):
        color = UP if bar.close >= bar.open else DOWN
        ax.vlines(i, bar.low, bar.high, color=color, linewidth=1)
        low, height = min(bar.open, bar.close), abs(bar.close - bar.open)
        ax.add_patch(mpl.patches.Rectangle((i - width / 2, low), width, max(height, 10**-digits / 2), color=color))
    lows = [b.low for b in bars] or [0.0]
    highs = [b.high for b in bars] or [1.0]
    lo, hi = min(lows), max(highs)
    pad = (hi - lo) * 0.05 or 10**-digits * 10
    shown = [lv for lv in levels if lo - 3 * pad <= lv <= hi + 3 * pad]
    for level in shown:
        ax.axhline(level, color=LEVEL, linestyle="--", linewidth=1)
        ax.text(len(bars) - 0.5, level, f" {level:.{digits}f}", color=LEVEL, va="bottom", ha="right", fontsize=8)
    lo, hi = min([lo, *shown]), max([hi, *shown])
    ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(-1, max(len(bars), 1))
    step = max(len(bars) // 6, 1)
    ticks = list(range(0, len(bars), step))
    ax.set_xticks(ticks)
    ax.set_xticklabels([datetime.fromtimestamp(bars[i].time, UTC).strftime("%m-%d %H:%M") for i in ticks])
    ax.yaxis.tick_right()
    ax.yaxis.set_major_formatter(mpl.ticker.FormatStrFormatter(f"%.{digits}f"))
    ax.tick_params(colors="#b2b5be", labelsize=8)
    for spine in ax.spines.values():
        spine.set_color("#363a45")
    ax.grid(color="#2a2e39", linewidth=0.5)
    if bars:
        last = bars[-1]
        ax.axhline(last.close, color="#2962ff", linewidth=0.8)
    ax.set_title(title, color="#d1d4dc", fontsize=12, loc="left")
    if mark:
        ax.set_title(mark, color=MARK, fontsize=12, loc="right", fontweight="bold")
        ax.text(0.5, 0.5, mark, transform=ax.transAxes, color=MARK, alpha=0.18, fontsize=28, ha="center",
                va="center", rotation=18, fontweight="bold")  # fmt: skip
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor=fig.get_facecolor(), metadata={"Description": mark} if mark else None)
    return buf.getvalue()
