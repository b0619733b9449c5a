"""The rpyc bridge: no code strings, strict validation, timeouts, reconnects."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import numpy as np
import pytest

from domain.market import mt5api
from domain.market.bridge import BridgeGateway, RemoteModule, decode, encode, open_connection
from domain.market.errors import BridgeProtocolError, GatewayTimeout, GatewayUnavailable, InvalidSymbolName
from domain.market.models import Timeframe
from domain.market.sim import SimTerminal
from domain.market.sim_module import SimMT5
from tests.unit.market.conftest import ServedModule

MALICIOUS = "EURUSD'); import os"


class Recording:
    """Wraps a module and records every call that reaches it."""

    def __init__(self, inner: Any, delay: dict[str, float] | None = None) -> None:
        self.inner = inner
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.delay = delay or {}

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            time.sleep(self.delay.get(name, 0.0))
            return target(*args, **kwargs)

        return call


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def recording(terminal: SimTerminal) -> Recording:
    terminal.open_demo_account()
    return Recording(SimMT5(terminal))


async def test_malicious_symbol_never_reaches_the_server(recording: Recording) -> None:
    served = ServedModule(recording)
    gw = BridgeGateway("127.0.0.1", served.port, timeout=5)
    try:
        await gw.connect()
        with pytest.raises(InvalidSymbolName) as err:
            await gw.tick(MALICIOUS)
        assert err.value.code == "MKT-INVALID-SYMBOL" and err.value.suggestions == ["EURUSD"]
        with pytest.raises(InvalidSymbolName):
            await gw.bars("__import__('os')", Timeframe.H1, 5)
        assert (await gw.tick("EURUSD")).bid > 0
    finally:
        await gw.close()
        served.close()
    sent = repr(recording.calls)
    assert "import" not in sent and "os'" not in sent
    assert ("symbol_info_tick", ("EURUSD",), {}) in recording.calls


def test_remote_module_validates_before_connecting() -> None:
    remote = RemoteModule("127.0.0.1", free_port(), retries=1)  # nothing listens there
    with pytest.raises(InvalidSymbolName):
        remote.symbol_info(MALICIOUS)
    with pytest.raises(InvalidSymbolName):
        remote.order_send({"action": 1, "symbol": MALICIOUS, "volume": 0.1, "type": 0})
    with pytest.raises(AttributeError):
        remote.eval  # noqa: B018 - not on the allow-list
    with pytest.raises(GatewayUnavailable):
        remote.symbol_info("EURUSD")  # well-formed: only now it tries the network


def test_server_refuses_bad_calls_itself(recording: Recording) -> None:
    served = ServedModule(recording)
    conn = open_connection("127.0.0.1", served.port, secret=None, timeout=5)
    try:
        with pytest.raises(ValueError):
            conn.root.call("symbol_info", encode((MALICIOUS,)), encode({}))
        with pytest.raises(ValueError):
            conn.root.call("__getattribute__", encode(()), encode({}))
        with pytest.raises(ValueError):
            conn.root.call("order_send", encode(({"action": 1, "symbol": "EURUSD", "exec": "x"},)), encode({}))
        with pytest.raises(ValueError):
            conn.root.call("symbols_total", [1, 2], encode({}))  # a remote list reference, not plain data
        with pytest.raises(AttributeError):
            conn.root.getmodule  # noqa: B018 - no classic mode
        assert decode(conn.root.call("symbols_total", encode(()), encode({}))) is None  # not initialized
        assert decode(conn.root.call("initialize", encode(()), encode({}))) is True
        assert decode(conn.root.call("symbols_total", encode(()), encode({}))) == 26
    finally:
        conn.close()
        served.close()
    assert [c[0] for c in recording.calls] == ["symbols_total", "initialize", "symbols_total"]


async def test_per_call_timeout_then_recovery(terminal: SimTerminal) -> None:
    terminal.open_demo_account()
    served = ServedModule(Recording(SimMT5(terminal), delay={"terminal_info": 0.8}))
    gw = BridgeGateway("127.0.0.1", served.port, timeout=0.3, retries=2, backoff=0.05)
    try:
        await gw.connect()
        started = time.monotonic()
        with pytest.raises(GatewayTimeout):
            await gw.ping()
        assert time.monotonic() - started < 0.7
        await asyncio.sleep(0.8)  # the terminal finishes the slow call
        assert (await gw.account()).balance == 10_000  # over a fresh connection
    finally:
        await gw.close()
        served.close()


async def test_reconnects_after_the_server_restarts(terminal: SimTerminal) -> None:
    login = terminal.open_demo_account()
    served = ServedModule(SimMT5(terminal))
    port = served.port
    gw = BridgeGateway("127.0.0.1", port, login=login, timeout=2, retries=3, backoff=0.05)
    try:
        await gw.connect()
        assert (await gw.account()).login == login
        served.close()
        with pytest.raises(GatewayUnavailable):
            await gw.account()
        served = ServedModule(SimMT5(terminal), port=port)  # a new process: not initialized
        assert (await gw.account()).login == login
    finally:
        await gw.close()
        served.close()


def test_backoff_is_exponential() -> None:
    sleeps: list[float] = []
    remote = RemoteModule("127.0.0.1", free_port(), retries=5, backoff=0.25, max_backoff=1.0, sleep=sleeps.append)
    with pytest.raises(GatewayUnavailable):
        remote.symbols_total()
    assert sleeps == [0.25, 0.5, 1.0, 1.0]


def test_codec_round_trip_and_refusals() -> None:
    rates = np.zeros(3, dtype=mt5api.RATES_DTYPE)
    rates["close"] = [1.1, 1.2, 1.3]
    tick = mt5api.Tick(1, 1.1, 1.2, 0.0, 0, 1000, 6, 0.0)
    value = (rates, tick, {"a": (1, None, "x")}, [np.float64(2.5)], True)
    back = decode(encode(value))
    assert np.array_equal(back[0], rates) and back[0].dtype == rates.dtype
    assert back[1] == tick and back[1]._fields == tick._fields and back[1].bid == 1.1
    assert back[2] == {"a": (1, None, "x")} and back[3] == (2.5,) and back[4] is True
    for bad in (("X", ()), ("A", (("", "|O"),), (1,), b"\0" * 8), ("R", "os.system", ("a",), (1,)), [1], object()):
        with pytest.raises(BridgeProtocolError):
            decode(bad)
    with pytest.raises(TypeError):
        encode(threading.Lock())
