"""Data from a real terminal carries no "simulated" mark: with MT5_BACKEND=rpyc the hub takes its market data
from the bridge (here a ``bridge_server --sim`` process, which the hub cannot tell from a terminal under Wine), so
/price, /chart and /status show no mark; the demo account still says it trades simulated prices, because it
runs on the built-in simulator whatever feeds market data."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from bot.settings import Settings
from tests.fakes.telegram import FakeTelegram
from tests.harness import Harness, build_harness
from tests.servers import sim_bridge

SYMBOL = "BTCUSD"  # trades every day: the test does not depend on the weekday
MARKS = ("Simulated prices", "SIMULATED", "built-in simulator")


@pytest.fixture
async def bridged(stack: Settings, telegram: FakeTelegram, tmp_path: Path) -> AsyncIterator[Harness]:
    async with sim_bridge(tmp_path / "bridge.log") as port:
        settings = stack.model_copy(update={"mt5_backend": "rpyc", "mt5_rpyc_host": "127.0.0.1", "mt5_rpyc_port": port})
        h = await build_harness(settings, telegram)
        try:
            assert not h.app.market.hub.simulated  # the hub knows its backend
            yield h
        finally:
            await h.close()


async def test_real_terminal_data_carries_no_simulated_mark(bridged: Harness) -> None:
    h = bridged
    price = await h.send(f"/price {SYMBOL}")
    assert SYMBOL in price[0].text and "Bid" in price[0].text
    assert not any(mark in price[0].text for mark in MARKS), price[0].text
    chart = await h.send(f"/chart {SYMBOL} H1")
    photo = next(c for c in chart if c.method == "sendPhoto")
    assert not any(mark in photo.params["caption"] for mark in MARKS)
    upload = next(v for v in photo.params.values() if isinstance(v, dict) and "content" in v)
    assert "Description" not in Image.open(io.BytesIO(bytes(upload["content"]))).info  # nothing drawn in
    status = await h.send("/status")
    assert "Market data: the built-in simulator" not in status[0].text
    assert "Demo accounts trade simulated prices" in status[0].text
    balance = await h.send("/balance")  # the demo account: on the built-in simulator all the same
    assert "Demo account: it trades simulated prices" in balance[0].text
