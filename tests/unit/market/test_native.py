"""The native backend: one dedicated thread, lazy import, error mapping."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from domain.market import convert, mt5api
from domain.market.errors import (
    AutoTradingDisabled,
    BackendNotInstalled,
    GatewayAuthError,
    GatewayError,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidRequest,
)
from domain.market.gateway import OrderRequest
from domain.market.models import Retcode, Side, Timeframe
from domain.market.native import NativeGateway
from domain.market.sim import SimTerminal
from domain.market.sim_module import SimMT5


class ThreadSpy:
    """Records the threads module calls run on; with ``hold``, account_info blocks until it is set."""

    def __init__(self, inner: Any, hold: threading.Event | None = None) -> None:
        self.inner, self.hold = inner, hold
        self.threads: set[int] = set()
        self.answered = threading.Event()  # account_info returned

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            self.threads.add(threading.get_ident())
            if name == "account_info" and self.hold is not None:
                self.hold.wait(30)
            try:
                return target(*args, **kwargs)
            finally:
                if name == "account_info":
                    self.answered.set()

        return call


async def test_every_call_runs_on_one_dedicated_thread(terminal: SimTerminal) -> None:
    login = terminal.open_demo_account()
    spy = ThreadSpy(SimMT5(terminal))
    gw = NativeGateway(module=spy, login=login)
    await gw.connect()
    await gw.symbol_spec("EURUSD")
    await gw.bars("EURUSD", Timeframe.M1, 10)
    await gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.1))
    await gw.positions()
    await gw.close()
    assert len(spy.threads) == 1 and threading.get_ident() not in spy.threads


async def test_slow_terminal_call_times_out(terminal: SimTerminal) -> None:
    login = terminal.open_demo_account()
    hold = threading.Event()  # the terminal hangs in account_info until the test lets it go
    spy = ThreadSpy(SimMT5(terminal), hold)
    gw = NativeGateway(module=spy, login=login, timeout=1.0)
    await gw.connect()
    with pytest.raises(GatewayTimeout):
        await gw.account()
    with pytest.raises(GatewayTimeout):
        await gw.tick("EURUSD")  # queued behind the hanging call on the one thread
    hold.set()  # the terminal answers at last: the thread finishes both calls in the background
    assert await asyncio.to_thread(spy.answered.wait, 30)
    assert (await gw.tick("EURUSD")).bid > 0
    await gw.close()
    with pytest.raises(GatewayUnavailable):
        await gw.tick("EURUSD")


async def test_without_the_metatrader5_package() -> None:
    gw = NativeGateway()
    with pytest.raises(BackendNotInstalled) as err:
        await gw.connect()
    assert err.value.code == "MKT-BACKEND-MISSING" and isinstance(err.value, GatewayUnavailable)
    await gw.close()


async def test_closing_an_unknown_ticket_is_position_closed(terminal: SimTerminal) -> None:
    gw = NativeGateway(module=SimMT5(terminal), login=terminal.open_demo_account())
    await gw.connect()
    r = await gw.order_send(OrderRequest.close("EURUSD", 123456))
    assert r.retcode == Retcode.POSITION_CLOSED and not r.ok
    await gw.close()


@pytest.mark.parametrize(
    ("code", "kind", "ecode"),
    [
        (mt5api.RES_E_INTERNAL_FAIL_CONNECT, GatewayUnavailable, "MKT-UNAVAILABLE"),
        (mt5api.RES_E_INTERNAL_FAIL_RECEIVE, GatewayUnavailable, "MKT-UNAVAILABLE"),
        (mt5api.RES_E_INTERNAL_FAIL_TIMEOUT, GatewayTimeout, "MKT-TIMEOUT"),
        (mt5api.RES_E_AUTH_FAILED, GatewayAuthError, "MKT-AUTH"),
        (mt5api.RES_E_AUTO_TRADING_DISABLED, AutoTradingDisabled, "MKT-AUTOTRADING-OFF"),
        (mt5api.RES_E_INVALID_PARAMS, InvalidRequest, "MKT-INVALID-REQUEST"),
        (mt5api.RES_E_FAIL, GatewayError, "MKT-ERROR"),
    ],
)
def test_last_error_mapping(code: int, kind: type[GatewayError], ecode: str) -> None:
    err = convert.error_from_last_error(code, "msg", "symbol_info")
    assert type(err) is kind and err.code == ecode and err.mt5_code == code
