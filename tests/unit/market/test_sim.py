"""The simulated terminal itself: replay, sessions, volatility, accounts, module shape."""

from __future__ import annotations

import csv
import math
from datetime import datetime, timedelta, UTC

import numpy as np
import pytest

from domain.market import mt5api
from domain.market.clock import ManualClock, SystemClock
from domain.market.gateway import OrderRequest
from domain.market.models import Side, Timeframe
from domain.market.prices import PriceEngine
from domain.market.sim import SimGateway, SimTerminal, default_replay, packaged_history
from domain.market.sim_module import SimMT5
from tests.unit.market.conftest import SEED, WEDNESDAY_NOON



def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def read_csv() -> list[dict[str, str]]:
    with open(packaged_history(), newline="") as fh:
        return list(csv.DictReader(fh))


# -- replay of real EURUSD history ------------------------------------------------------------


def test_packaged_history_is_the_real_data() -> None:
    rows = read_csv()
    assert len(rows) == 5000
    assert (rows[0]["time"], rows[0]["open"], rows[0]["close"]) == ("2017-04-19 09:00:00", "1.0716", "1.07219")
    assert rows[-1]["time"] == "2018-02-07 15:00:00"
    assert default_replay() == {"EURUSD": packaged_history()}


@pytest.fixture(scope="module")
def replay_terminal() -> SimTerminal:
    return SimTerminal(SEED, clock=ManualClock(utc(2018, 2, 9)), replay=default_replay())


async def test_replayed_bars_equal_the_csv(replay_terminal: SimTerminal) -> None:
    rows = read_csv()
    gw = SimGateway(replay_terminal, replay_terminal.open_demo_account())
    first = datetime.fromisoformat(rows[0]["time"]).replace(tzinfo=UTC)
    last = datetime.fromisoformat(rows[-1]["time"]).replace(tzinfo=UTC)
    bars = await gw.bars_range("EURUSD", Timeframe.H1, first, last)
    assert len(bars) == len(rows) == 5000
    for bar, row in zip(bars, rows, strict=True):
        assert bar.time == int(datetime.fromisoformat(row["time"]).replace(tzinfo=UTC).timestamp())
        assert (bar.open, bar.high, bar.low, bar.close) == pytest.approx(
            tuple(float(row[k]) for k in ("open", "high", "low", "close")), abs=1e-9
        )
        assert bar.tick_volume == float(row["volume"])


async def test_replay_lower_timeframes_and_ticks_agree(replay_terminal: SimTerminal) -> None:
    gw = SimGateway(replay_terminal, replay_terminal.open_demo_account())
    hour = utc(2017, 9, 13, 14)
    [h1] = await gw.bars_range("EURUSD", Timeframe.H1, hour, hour)
    m1 = await gw.bars_range("EURUSD", Timeframe.M1, hour, hour + timedelta(minutes=59))
    assert len(m1) == 60 and m1[0].open == h1.open and m1[-1].close == h1.close
    assert max(b.high for b in m1) == h1.high and min(b.low for b in m1) == h1.low
    # a tick inside the replay lies within that hour's range
    clock = ManualClock(hour + timedelta(minutes=30))
    term = SimTerminal(SEED, clock=clock, replay=default_replay())
    t = await SimGateway(term, term.open_demo_account()).tick("EURUSD")
    assert h1.low <= t.bid <= h1.high


def test_synthetic_history_joins_the_replay_continuously(replay_terminal: SimTerminal) -> None:
    rows = read_csv()
    end = int(datetime.fromisoformat(rows[-1]["time"]).replace(tzinfo=UTC).timestamp()) + 3600
    after = replay_terminal.rates_range("EURUSD", 3600, end, end + 3 * 3600)
    assert abs(after["open"][0] - float(rows[-1]["close"])) < 0.0010
    start = int(datetime.fromisoformat(rows[0]["time"]).replace(tzinfo=UTC).timestamp())
    before = replay_terminal.rates_range("EURUSD", 3600, start - 3 * 3600, start - 1)
    assert abs(before["close"][-1] - float(rows[0]["open"])) < 0.0010


# -- sessions and realism ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "when", "is_open"),
    [
        ("EURUSD", utc(2025, 1, 17, 21, 59), True),
        ("EURUSD", utc(2025, 1, 17, 22, 0), False),
        ("EURUSD", utc(2025, 1, 19, 21, 59), False),
        ("EURUSD", utc(2025, 1, 19, 22, 0), True),
        ("XAUUSD", utc(2025, 1, 15, 22, 30), False),
        ("US500", utc(2025, 1, 15, 21, 30), False),
        ("US500", utc(2025, 1, 15, 14, 30), True),
        ("GER40", utc(2025, 1, 15, 5, 0), False),
        ("GER40", utc(2025, 1, 15, 9, 0), True),
        ("UK100", utc(2025, 1, 18, 9, 0), False),
        ("BTCUSD", utc(2025, 1, 18, 3, 0), True),
    ],
)
def test_sessions(symbol: str, when: datetime, is_open: bool) -> None:
    assert PriceEngine(SEED).is_open(symbol, ms(when)) is is_open


def test_volatility_is_realistic_and_seasonal() -> None:
    eng = PriceEngine(SEED)
    now = ms(WEDNESDAY_NOON)
    h1 = eng.rates_back("EURUSD", 3600, now // 1000, now, 24 * 5 * 16)
    r = np.diff(np.log(h1["close"]))
    annual = r.std() * math.sqrt(len(r) / (16 * 7 / 365.25))
    assert 0.045 < annual < 0.10  # configured 7%
    btc = eng.rates_back("BTCUSD", 86400, now // 1000, now, 240)
    annual_btc = np.diff(np.log(btc["close"])).std() * math.sqrt(365.25)
    assert 0.35 < annual_btc < 0.80  # configured 55%
    m1 = eng.rates_range("EURUSD", 60, now // 1000 - 5 * 86400, now // 1000, now)
    hours = (m1["time"] % 86400) // 3600
    moves = np.abs(np.diff(np.log(m1["close"]), prepend=np.log(m1["close"][0])))
    overlap, asia = moves[(hours >= 12) & (hours < 16)].mean(), moves[(hours >= 1) & (hours < 6)].mean()
    assert overlap > 1.5 * asia


def test_crosses_are_products_of_their_legs() -> None:
    term = SimTerminal(SEED, clock=ManualClock(WEDNESDAY_NOON))
    eurjpy = term.quote("EURJPY")[1]  # type: ignore[index]
    product = term.quote("EURUSD")[1] * term.quote("USDJPY")[1]  # type: ignore[index]
    assert eurjpy == pytest.approx(product, rel=2e-4)


def test_prices_are_seeded() -> None:
    now = ms(WEDNESDAY_NOON)
    a, b, c = PriceEngine(1), PriceEngine(1), PriceEngine(2)
    assert np.array_equal(
        a.rates_back("XAUUSD", 300, now // 1000, now, 100), b.rates_back("XAUUSD", 300, now // 1000, now, 100)
    )
    assert a.quote("XAUUSD", now) != c.quote("XAUUSD", now)


def test_history_is_the_same_whenever_it_is_asked_for() -> None:
    """Bars of a past day do not depend on the order of requests or caches."""
    now = ms(WEDNESDAY_NOON)
    fresh = PriceEngine(SEED, cache_days=2, cache_rows=10)
    warm = PriceEngine(SEED)
    warm.rates_back("EURUSD", 60, now // 1000, now, 5000)
    day = now // 1000 - 3 * 86400
    assert np.array_equal(
        fresh.rates_range("EURUSD", 900, day, day + 86400, now), warm.rates_range("EURUSD", 900, day, day + 86400, now)
    )


# -- terminal --------------------------------------------------------------------------------


def test_clocks() -> None:
    clock = ManualClock(WEDNESDAY_NOON)
    assert clock() == ms(WEDNESDAY_NOON)
    assert clock.advance(1.5) == ms(WEDNESDAY_NOON) + 1500
    with pytest.raises(ValueError):
        clock.advance(-1)
    assert abs(SystemClock()() - datetime.now(UTC).timestamp() * 1000) < 5_000
    with pytest.raises(TypeError):
        SimTerminal(SEED, clock=SystemClock()).advance(1)


async def test_accounts_are_isolated_and_tickets_monotonic() -> None:
    term = SimTerminal(SEED, clock=ManualClock(WEDNESDAY_NOON))
    a, b = term.open_demo_account(1_000, "USD", 30), term.open_demo_account(50_000, "GBP", 200)
    ga, gb = SimGateway(term, a), SimGateway(term, b)
    ra = await ga.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.01))
    rb = await gb.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.01))
    assert rb.order > ra.order and rb.deal > ra.deal
    assert [p.ticket for p in await ga.positions()] == [ra.order]
    assert [p.ticket for p in await gb.positions()] == [rb.order]
    acc = await gb.account()
    assert (acc.currency, acc.leverage, acc.balance) == ("GBP", 200, 50_000)
    with pytest.raises(ValueError):
        term.open_demo_account(1_000, "XYZ", 100)


async def test_wrong_password_is_an_auth_error() -> None:
    from domain.market.errors import GatewayAuthError

    term = SimTerminal(SEED, clock=ManualClock(WEDNESDAY_NOON))
    login = term.open_demo_account(password="s3cret")
    with pytest.raises(GatewayAuthError) as err:
        await SimGateway(term, login, password="nope").connect()
    assert err.value.code == "MKT-AUTH"
    await SimGateway(term, login, password="s3cret").connect()


def test_fault_validation() -> None:
    term = SimTerminal(SEED, clock=ManualClock(WEDNESDAY_NOON))
    with pytest.raises(ValueError):
        term.inject("meteor")
    term.inject("timeout", count=2)
    assert [term.take_fault(("timeout",)) for _ in range(3)] == ["timeout", "timeout", None]


# -- the module double looks like MetaTrader5 -----------------------------------------------


def test_module_double_shapes_and_errors() -> None:
    term = SimTerminal(SEED, clock=ManualClock(WEDNESDAY_NOON))
    login = term.open_demo_account()
    mt5 = SimMT5(term)
    assert mt5.account_info() is None and mt5.last_error()[0] == mt5api.RES_E_INTERNAL_FAIL_CONNECT
    assert mt5.initialize(login=login) is True and mt5.last_error() == (1, "Success")
    assert (mt5.TIMEFRAME_H1, mt5.TIMEFRAME_D1, mt5.ORDER_TYPE_SELL, mt5.TRADE_ACTION_DEAL) == (16385, 16408, 1, 1)
    assert mt5.TRADE_RETCODE_DONE == 10009 and mt5.TRADE_RETCODE_NO_MONEY == 10019
    rates = mt5.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M5, 0, 10)
    assert rates.dtype.names == ("time", "open", "high", "low", "close", "tick_volume", "spread", "real_volume")
    assert len(rates) == 10 and rates["time"][-1] == ms(WEDNESDAY_NOON) // 1000
    assert len(mt5.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M5, 2, 10)) == 10
    assert mt5.copy_rates_from_pos("EURUSD", mt5.TIMEFRAME_M5, 2, 10)["time"][-1] == rates["time"][-3]
    tick = mt5.symbol_info_tick("EURUSD")
    assert tick._fields == ("time", "bid", "ask", "last", "volume", "time_msc", "flags", "volume_real")
    info = mt5.symbol_info("USDJPY")
    assert (info.digits, info.trade_contract_size, info.currency_margin) == (3, 100_000.0, "USD")
    assert mt5.symbol_info("NOPE") is None and mt5.last_error()[0] == mt5api.RES_E_NOT_FOUND
    assert [s.name for s in mt5.symbols_get(group="*JPY*,!EUR*")] == ["USDJPY", "GBPJPY", "AUDJPY", "CADJPY", "CHFJPY"]
    check = mt5.order_check({"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "price": tick.ask})
    assert check.retcode == 0 and check.comment == "Done" and check.margin > 0
    sent = mt5.order_send(
        {"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "price": tick.ask, "deviation": 5}
    )
    assert sent.retcode == mt5.TRADE_RETCODE_DONE and sent.request.symbol == "EURUSD"
    [pos] = mt5.positions_get(symbol="EURUSD")
    assert pos.ticket == sent.order and pos.identifier == sent.order and pos.type == mt5.POSITION_TYPE_BUY
    deals = mt5.history_deals_get(0, ms(WEDNESDAY_NOON) // 1000 + 1)
    assert [d.type for d in deals] == [mt5.DEAL_TYPE_BALANCE, mt5.DEAL_TYPE_BUY]
    assert mt5.order_calc_margin(mt5.ORDER_TYPE_BUY, "EURUSD", 1.0, tick.ask) == pytest.approx(
        1000 * (tick.bid + tick.ask) / 2, abs=0.01
    )
    assert mt5.order_calc_profit(mt5.ORDER_TYPE_BUY, "EURUSD", 1.0, 1.1, 1.1010) == pytest.approx(100.0)
    mt5.shutdown()
    assert mt5.symbol_info_tick("EURUSD") is None
