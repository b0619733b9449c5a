"""The garbage collector of a long-running process (`run`, `worker`): tuned after start-up, its pauses watched.

A full (generation 2) collection walks every tracked object that is not
frozen. Everything built at start-up (modules, the Dispatcher, routers, the
ORM's mappers, aiogram's pydantic models: most of the heap) lives until exit:
``python -m bot`` runs its start-up with the collector off (bot/__main__.py),
then ``settle`` moves that heap out of the collector's sight (``gc.freeze()``;
no collection first: one full pass over it costs more than half a second here
and frees a few thousand objects), raises the thresholds so the young
generation is not collected every 700 allocations of an update, and turns the
collector back on. ``GcMonitor`` times every collection through
``gc.callbacks`` and keeps the recent full ones; the longest within ``WINDOW``
seconds is the gauge ``hybrid_gc_pause_max_seconds`` on /metrics (0 when there
was none).
"""

from __future__ import annotations

import gc
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

# Young collections every 10,000 net allocations instead of 700 (a few ms of work at most);
# a generation-1 pass every 20 of them; generation 2 as CPython decides (it also waits until the
# objects that would be examined grew by a quarter).
THRESHOLDS = (10_000, 20, 10)
WINDOW = 600.0  # seconds: how far back "recent" reaches for the gauge
KEPT = 128  # full collections remembered (their time and pause)


class GcMonitor(Collector):
    """Times collections through ``gc.callbacks``; a Prometheus collector of the worst recent full one."""

    def __init__(self, window: float = WINDOW, clock: Any = time.monotonic) -> None:
        self.window = window
        self._clock = clock
        self._started: float | None = None
        self.pauses: deque[tuple[float, float]] = deque(maxlen=KEPT)  # (when, seconds) of full collections
        self.collections = 0
        self.thresholds: tuple[int, int, int] | None = None  # what ``settle`` replaced, restored by ``close``

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        if self._started is None:
            return
        took, self._started = time.perf_counter() - self._started, None
        self.collections += 1
        if info.get("generation") == 2:
            self.pauses.append((self._clock(), took))

    def install(self) -> GcMonitor:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)
        return self

    def uninstall(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def close(self) -> None:
        """Stop timing and put back the thresholds ``settle`` replaced (a process serving in-process, a test)."""
        self.uninstall()
        if self.thresholds is not None:
            gc.set_threshold(*self.thresholds)
            self.thresholds = None

    def worst(self) -> float:
        """The longest full collection within the window, in seconds (0.0 when there was none)."""
        since = self._clock() - self.window
        return max((took for at, took in self.pauses if at >= since), default=0.0)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "hybrid_gc_pause_max_seconds",
            f"Longest full (generation 2) garbage collection in the last {self.window:.0f} s, after start-up",
            value=self.worst(),
        )


def settle(registry: CollectorRegistry | None = None) -> GcMonitor:
    """Call once start-up is done: freeze what start-up built, raise the thresholds, start timing pauses.

    With ``registry`` (the process's /metrics registry) the gauge is registered on it."""
    gc.freeze()  # start-up objects live forever: full collections no longer rescan them
    monitor = GcMonitor()
    monitor.thresholds = gc.get_threshold()
    gc.set_threshold(*THRESHOLDS)
    monitor.install()
    gc.enable()  # `python -m bot` starts with the collector off (bot/__main__.py)
    if registry is not None:
        registry.register(monitor)
    return monitor
