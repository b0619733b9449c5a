"""Symbol suggestions, the request helpers and the backend factory."""

from __future__ import annotations

import pytest

from domain.market import make_gateway
from domain.market.bridge import BridgeGateway
from domain.market.gateway import OrderAction, OrderRequest, TradingGateway
from domain.market.models import Side
from domain.market.native import NativeGateway
from domain.market.sim import SimGateway
from domain.market.symbols import UNIVERSE, is_valid_symbol_name, suggest

NAMES = list(UNIVERSE)


@pytest.mark.parametrize(
    ("query", "best"),
    [
        ("EURUSDX", "EURUSD"),
        ("eurusd", "EURUSD"),
        ("EUR/USD", "EURUSD"),
        ("EURSUD", "EURUSD"),
        ("gold", "XAUUSD"),
        ("dax", "GER40"),
        ("BTC", "BTCUSD"),
        ("NAS", "NAS100"),
    ],
)
def test_suggest(query: str, best: str) -> None:
    assert suggest(query, NAMES)[0] == best


def test_suggest_nothing_for_noise() -> None:
    assert suggest("QQQQQQQQ", NAMES) == []
    assert suggest("", NAMES) == []


@pytest.mark.parametrize("name", ["EURUSD", "EURUSD.m", "US500.cash", "#AAPL", "GER40-Z", "XAUUSD_i"])
def test_valid_names(name: str) -> None:
    assert is_valid_symbol_name(name)


@pytest.mark.parametrize("name", ["EURUSD'); import os", "", "a b", "EUR\nUSD", "x" * 40, "__import__('os')", 5])
def test_invalid_names(name: object) -> None:
    assert not is_valid_symbol_name(name)


def test_request_helpers() -> None:
    close = OrderRequest.close("EURUSD", 42, 0.5, client_id="c-1")
    assert (close.action, close.position, close.volume, close.mt5_comment) == (OrderAction.CLOSE, 42, 0.5, "c-1")
    buy = OrderRequest.market("EURUSD", Side.BUY, 0.1, comment="x" * 40, client_id="c-2")
    assert buy.mt5_comment == "x" * 31
    assert OrderRequest.modify("EURUSD", 42, sl=1.1).action is OrderAction.SLTP


async def test_factory() -> None:
    sim = make_gateway("sim", seed=3)
    assert isinstance(sim, SimGateway) and isinstance(sim, TradingGateway)
    await sim.connect()
    assert (await sim.account()).balance == 10_000
    assert isinstance(make_gateway("native"), NativeGateway)
    bridge = make_gateway("RPYC", host="127.0.0.1", port=1)
    assert isinstance(bridge, BridgeGateway) and bridge.remote.port == 1
    with pytest.raises(ValueError):
        make_gateway("mt4")
