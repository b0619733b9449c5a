"""Injectable clocks (epoch milliseconds, UTC) for the simulated terminal."""

from __future__ import annotations

import threading
import time
from datetime import datetime, UTC
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def __call__(self) -> int:
        """Now, in epoch milliseconds (UTC)."""
        ...


class SystemClock:
    """Wall-clock time."""

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that only moves when told to: tests and backtests step it."""

    def __init__(self, start: datetime | int) -> None:
        self._lock = threading.Lock()
        self._now = _to_ms(start)

    def __call__(self) -> int:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> int:
        if seconds < 0:
            raise ValueError("a clock does not run backwards; use set()")
        with self._lock:
            self._now += int(round(seconds * 1000))
            return self._now

    def set(self, when: datetime | int) -> None:
        with self._lock:
            self._now = _to_ms(when)


def _to_ms(when: datetime | int) -> int:
    """Epoch ms from an aware datetime (naive = UTC) or from epoch ms."""
    if isinstance(when, datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return int(round(when.timestamp() * 1000))
    return int(when)
