"""The collector's tuning after start-up and the gauge of its worst recent full pause (bot/gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bot import gc_tuning
from bot.observability import Metrics


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)
    if enabled:
        gc.enable()


def _gauge(metrics: Metrics) -> float:
    lines = [line for line in metrics.render().decode().splitlines() if line.startswith("hybrid_gc_pause_max_seconds ")]
    assert len(lines) == 1, lines
    return float(lines[0].split()[1])


def test_settle_freezes_start_up_turns_the_collector_on_and_close_restores(restored: None) -> None:
    before = gc.get_threshold()
    gc.disable()  # as `python -m bot` starts
    monitor = gc_tuning.settle()
    try:
        assert gc.isenabled()
        assert gc.get_threshold() == gc_tuning.THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        monitor.close()
    assert gc.get_threshold() == before
    assert monitor._callback not in gc.callbacks


def test_gauge_on_metrics_reports_the_longest_recent_full_collection(restored: None) -> None:
    metrics = Metrics()
    monitor = gc_tuning.settle(metrics.registry)
    try:
        assert _gauge(metrics) == 0.0  # none since start-up
        gc.collect(1)  # a young collection is not a full one
        assert _gauge(metrics) == 0.0
        gc.collect()
        gc.collect()
        worst = _gauge(metrics)
        assert worst > 0.0
        assert worst == max(took for _at, took in monitor.pauses)
        assert len(monitor.pauses) == 2
    finally:
        monitor.close()
    gc.collect()  # after close nothing is timed any more
    assert len(monitor.pauses) == 2


def test_pauses_older_than_the_window_leave_the_gauge() -> None:
    now = [1000.0]
    monitor = gc_tuning.GcMonitor(window=60.0, clock=lambda: now[0])
    monitor.install()
    try:
        gc.collect()
    finally:
        monitor.uninstall()
    assert monitor.worst() > 0.0
    now[0] += 61.0
    assert monitor.worst() == 0.0
    assert len(monitor.pauses) == 1  # remembered, but no longer recent
