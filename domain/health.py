"""Health probes for /status and /healthz.

Each component (database, Redis, gateway, workers) registers a probe; the
service runs them concurrently with a timeout so one hung dependency cannot
hang /status.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

PROBE_TIMEOUT = 2.0
MAX_AGE = 1.0  # a /status flood must not become a database flood


@dataclass(frozen=True, slots=True)
class ProbeResult:
    name: str  # component key: database, redis, workers, gateway …
    ok: bool
    latency_ms: float | None = None
    detail: str = ""  # machine-readable detail (backend name, error code); not user text


Check = Callable[[], Awaitable[str]]  # returns detail, raises on failure


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    check: Check


class HealthService:
    def __init__(self, probes: list[Probe], started_at: float | None = None) -> None:
        self._probes = list(probes)
        self.started_at = time.monotonic() if started_at is None else started_at
        self._last: tuple[float, list[ProbeResult]] | None = None

    def add(self, probe: Probe) -> None:
        self._probes.append(probe)
        self._last = None

    @property
    def uptime(self) -> float:
        return time.monotonic() - self.started_at

    async def check(self) -> list[ProbeResult]:
        """Every probe's result, at most ``MAX_AGE`` seconds old."""
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < MAX_AGE:
            return self._last[1]
        results = list(await asyncio.gather(*(self._run(p) for p in self._probes)))
        self._last = (now, results)
        return results

    @staticmethod
    async def _run(probe: Probe) -> ProbeResult:
        start = time.perf_counter()
        try:
            detail = await asyncio.wait_for(probe.check(), PROBE_TIMEOUT)
        except TimeoutError:
            return ProbeResult(probe.name, False, None, "timeout")
        except Exception as exc:  # a probe reports failure; it never raises
            return ProbeResult(probe.name, False, None, type(exc).__name__)
        return ProbeResult(probe.name, True, (time.perf_counter() - start) * 1000, detail)
