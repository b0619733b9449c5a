"""Fixtures: one simulated terminal seen through each of the three backends."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, UTC
from typing import Any

import pytest

from domain.market.bridge import BridgeGateway
from domain.market.bridge_server import make_server
from domain.market.clock import ManualClock
from domain.market.mt5client import ModuleGateway
from domain.market.native import NativeGateway
from domain.market.sim import SimGateway, SimTerminal
from domain.market.sim_module import SimMT5

SEED = 7
WEDNESDAY_NOON = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
SATURDAY_NOON = datetime(2025, 1, 18, 12, 0, tzinfo=UTC)


class ServedModule:
    """An rpyc bridge server on 127.0.0.1 (free port) in a background thread."""

    def __init__(self, module: Any, port: int = 0) -> None:
        self.server = make_server(module, "127.0.0.1", port)
        self.port = self.server.port
        self.thread = threading.Thread(target=self.server.start, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 5
        while not self.server.active and time.monotonic() < deadline:  # listening
            time.sleep(0.005)

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=5)


@dataclass
class Env:
    backend: str
    terminal: SimTerminal
    clock: ManualClock
    login: int
    gw: ModuleGateway
    make: Callable[[int], ModuleGateway]
    extra: list[ModuleGateway] = field(default_factory=list)

    async def gateway_for(self, login: int) -> ModuleGateway:
        """Another account on the same terminal through the same backend."""
        gw = self.make(login)
        self.extra.append(gw)
        await gw.connect()
        return gw


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(WEDNESDAY_NOON)


@pytest.fixture
def terminal(clock: ManualClock) -> SimTerminal:
    return SimTerminal(SEED, clock=clock)


@pytest.fixture(params=["sim", "native", "rpyc"])
async def env(request: pytest.FixtureRequest, terminal: SimTerminal, clock: ManualClock) -> AsyncIterator[Env]:
    login = terminal.open_demo_account(10_000, "USD", 100)
    served: ServedModule | None = None
    if request.param == "sim":

        def make(lg: int) -> ModuleGateway:
            return SimGateway(terminal, lg)

    elif request.param == "native":

        def make(lg: int) -> ModuleGateway:
            return NativeGateway(module=SimMT5(terminal), login=lg, timeout=10)

    else:
        served = ServedModule(SimMT5(terminal))

        def make(lg: int) -> ModuleGateway:
            return BridgeGateway("127.0.0.1", served.port, login=lg, timeout=5, retries=2, backoff=0.05)

    gw = make(login)
    await gw.connect()
    e = Env(request.param, terminal, clock, login, gw, make)
    yield e
    for g in [gw, *e.extra]:
        await g.close()
    if served is not None:
        served.close()
