"""Equity-curve PNG with its drawdown underneath (matplotlib, Agg): call ``render`` off the event loop."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import UTC, datetime

from domain.analytics.metrics import EquityPoint
from domain.plotting import matplotlib

BG, GRID, TEXT, LINE, FILL, DD = "#131722", "#2a2e39", "#b2b5be", "#2962ff", "#2962ff33", "#ef5350"


def render(title: str, equity: Sequence[EquityPoint], drawdown: Sequence[EquityPoint], drawdown_label: str) -> bytes:
    """A PNG: ``equity`` on top, ``drawdown`` (percent, <= 0) below; both oldest first."""
    fig = matplotlib().figure.Figure(figsize=(10, 5.6), dpi=100, facecolor=BG)
    top = fig.add_axes((0.06, 0.34, 0.86, 0.58), facecolor=BG)
    bottom = fig.add_axes((0.06, 0.08, 0.86, 0.2), facecolor=BG, sharex=top)
    xs = [datetime.fromtimestamp(t, UTC) for t, _ in equity]
    ys = [v for _, v in equity]
    if len(xs) == 1:  # one point still draws as a flat line
        xs, ys = [xs[0], xs[0]], [ys[0], ys[0]]
    top.plot(xs, ys, color=LINE, linewidth=1.4)
    if ys:
        top.fill_between(xs, ys, min(ys), color=FILL)
        top.axhline(ys[0], color=GRID, linewidth=0.8, linestyle="--")
    dxs = [datetime.fromtimestamp(t, UTC) for t, _ in drawdown]
    dys = [v for _, v in drawdown]
    if dxs:
        bottom.fill_between(dxs, dys, 0, color=DD, alpha=0.6, linewidth=0)
    bottom.set_ylabel(drawdown_label, color=TEXT, fontsize=8)
    for ax in (top, bottom):
        ax.yaxis.tick_right()
        ax.tick_params(colors=TEXT, labelsize=8)
        ax.grid(color=GRID, linewidth=0.5)
        for spine in ax.spines.values():
            spine.set_color("#363a45")
    top.tick_params(labelbottom=False)
    top.set_title(title, color="#d1d4dc", fontsize=12, loc="left")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor=fig.get_facecolor())
    return buf.getvalue()
