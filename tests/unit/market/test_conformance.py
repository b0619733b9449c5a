"""One behaviour, three backends: sim, native (module double), rpyc bridge."""

from __future__ import annotations

from datetime import datetime, timedelta, UTC

import pytest

from domain.market.errors import GatewayTimeout, GatewayUnavailable, UnknownSymbol
from domain.market.gateway import OrderRequest
from domain.market.models import Retcode, Side, Timeframe
from domain.market.sim import SimGateway, SimTerminal
from domain.market.symbols import UNIVERSE
from tests.unit.market.conftest import SATURDAY_NOON, SEED, WEDNESDAY_NOON, Env

EURUSD = UNIVERSE["EURUSD"].spec
PT = EURUSD.point


def utc(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


async def open_buy(env: Env, volume: float = 0.10, **kw: float) -> int:
    r = await env.gw.order_send(OrderRequest.market("EURUSD", Side.BUY, volume, **kw))
    assert r.retcode == Retcode.DONE, r
    return r.order


# -- symbols and quotes ---------------------------------------------------------------


async def test_symbol_universe_and_specs(env: Env) -> None:
    names = await env.gw.symbols()
    assert set(UNIVERSE) <= set(names)
    for name in ("EURUSD", "USDJPY", "EURGBP", "XAUUSD", "US500", "GER40", "BTCUSD", "ETHUSD"):
        assert await env.gw.symbol_spec(name) == UNIVERSE[name].spec
    jpy = await env.gw.symbol_spec("USDJPY")
    assert (jpy.digits, jpy.point, jpy.currency_profit, jpy.currency_margin) == (3, 0.001, "JPY", "USD")


async def test_tick_has_spread_and_current_time(env: Env) -> None:
    t = await env.gw.tick("EURUSD")
    now = env.clock()
    assert t.symbol == "EURUSD"
    assert 0 < t.bid < t.ask
    assert now - 5_000 < t.time_msc <= now
    spread_points = round((t.ask - t.bid) / PT)
    assert spread_points == env.terminal.prices.spread_at("EURUSD", now // 5_000)
    assert 5 <= spread_points <= 40


async def test_bars_aggregate_across_timeframes_and_end_at_the_tick(env: Env) -> None:
    gw = env.gw
    tick = await gw.tick("EURUSD")
    h1 = await gw.bars("EURUSD", Timeframe.H1, 24)
    assert len(h1) == 24
    assert [b.time for b in h1] == [h1[0].time + 3600 * i for i in range(24)]
    assert h1[-1].time == int(WEDNESDAY_NOON.timestamp())
    assert h1[-1].close == tick.bid
    assert (await gw.bars("EURUSD", Timeframe.M1, 1))[-1].close == tick.bid
    for bar in h1:
        assert bar.low <= min(bar.open, bar.close) <= max(bar.open, bar.close) <= bar.high

    hour = h1[-2]
    m1 = await gw.bars_range("EURUSD", Timeframe.M1, utc(hour.time), utc(hour.time + 3599))
    assert len(m1) == 60
    assert m1[0].open == hour.open and m1[-1].close == hour.close
    assert max(b.high for b in m1) == hour.high
    assert min(b.low for b in m1) == hour.low
    assert sum(b.tick_volume for b in m1) == hour.tick_volume

    h4 = await gw.bars("EURUSD", Timeframe.H4, 2)
    inside = [b for b in h1 if h4[0].time <= b.time < h4[0].time + 4 * 3600]
    assert len(inside) == 4
    assert (h4[0].open, h4[0].high, h4[0].low, h4[0].close) == (
        inside[0].open,
        max(b.high for b in inside),
        min(b.low for b in inside),
        inside[-1].close,
    )
    d1 = await gw.bars("EURUSD", Timeframe.D1, 1)
    today = [b for b in h1 if b.time >= d1[-1].time]
    assert d1[-1].high == max(b.high for b in today) and d1[-1].close == tick.bid


async def test_bars_range_is_bounded_and_ordered(env: Env) -> None:
    start, end = WEDNESDAY_NOON - timedelta(days=2), WEDNESDAY_NOON - timedelta(days=1)  # Monday to Tuesday
    bars = await env.gw.bars_range("EURUSD", Timeframe.M15, start, end)
    assert len(bars) == 24 * 4 + 1
    sunday = await env.gw.bars_range("EURUSD", Timeframe.H1, start - timedelta(days=1), start - timedelta(hours=12))
    assert [utc(b.time).hour for b in sunday] == [22, 23, 0]  # FX opens Sunday 22:00
    assert bars[0].time == int(start.timestamp()) and bars[-1].time == int(end.timestamp())
    assert all(a.time < b.time for a, b in zip(bars, bars[1:], strict=False))


# -- orders -------------------------------------------------------------------------------


async def test_buy_fills_at_ask_and_account_arithmetic(env: Env) -> None:
    t = await env.gw.tick("EURUSD")
    r = await env.gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.10))
    assert (r.retcode, r.price, r.volume) == (Retcode.DONE, t.ask, 0.10)
    assert r.ok and r.order > 0 and r.deal > 0
    [pos] = await env.gw.positions()
    assert (pos.ticket, pos.side, pos.volume, pos.price_open, pos.price_current) == (
        r.order,
        Side.BUY,
        0.10,
        t.ask,
        t.bid,
    )
    assert pos.profit == round((t.bid - t.ask) * 0.10 * 100_000, 2)
    acc = await env.gw.account()
    mid = (t.bid + t.ask) / 2
    assert acc.balance == 10_000
    assert acc.margin == pytest.approx(0.10 * 100_000 / 100 * mid, abs=0.01)
    assert acc.equity == pytest.approx(acc.balance + pos.profit, abs=1e-9)
    assert acc.margin_free == pytest.approx(acc.equity - acc.margin, abs=1e-9)
    assert acc.margin_level == pytest.approx(acc.equity / acc.margin * 100, abs=0.01)
    assert acc.is_demo and acc.currency == "USD" and acc.leverage == 100


async def test_sell_fills_at_bid(env: Env) -> None:
    t = await env.gw.tick("GBPUSD")
    r = await env.gw.order_send(OrderRequest.market("GBPUSD", Side.SELL, 0.05))
    assert (r.retcode, r.price) == (Retcode.DONE, t.bid)
    [pos] = await env.gw.positions("GBPUSD")
    assert pos.side is Side.SELL and pos.price_current == t.ask


async def test_no_money_for_a_huge_volume(env: Env) -> None:
    r = await env.gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 100.0))
    assert r.retcode == Retcode.NO_MONEY and not r.ok
    assert await env.gw.positions() == []


@pytest.mark.parametrize("volume", [0.015, 0.001, 150.0])
async def test_invalid_volume(env: Env, volume: float) -> None:
    r = await env.gw.order_send(OrderRequest.market("EURUSD", Side.BUY, volume))
    assert r.retcode == Retcode.INVALID_VOLUME


async def test_invalid_stops(env: Env) -> None:
    t = await env.gw.tick("EURUSD")
    cases = [
        OrderRequest.market("EURUSD", Side.BUY, 0.1, sl=round(t.bid + 20 * PT, 5)),  # SL above the price
        OrderRequest.market("EURUSD", Side.BUY, 0.1, sl=round(t.bid - 5 * PT, 5)),  # inside the stops level
        OrderRequest.market("EURUSD", Side.SELL, 0.1, tp=round(t.ask + 50 * PT, 5)),  # TP on the wrong side
    ]
    for req in cases:
        assert (await env.gw.order_send(req)).retcode == Retcode.INVALID_STOPS
    ok = await env.gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.1, sl=round(t.bid - 50 * PT, 5)))
    assert ok.retcode == Retcode.DONE
    [pos] = await env.gw.positions()
    assert pos.sl == round(t.bid - 50 * PT, 5) and pos.tp is None


async def test_market_closed_on_the_weekend_but_crypto_trades(env: Env) -> None:
    env.clock.set(SATURDAY_NOON)
    r = await env.gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.1))
    assert r.retcode == Retcode.MARKET_CLOSED
    t = await env.gw.tick("EURUSD")  # the last tick of Friday 21:59:55
    assert t.time_msc == int(datetime(2025, 1, 17, 21, 59, 55, tzinfo=UTC).timestamp() * 1000)
    btc = await env.gw.order_send(OrderRequest.market("BTCUSD", Side.BUY, 0.01))
    assert btc.retcode == Retcode.DONE


async def test_trade_disabled(env: Env) -> None:
    env.terminal.set_trading("XAUUSD", False)
    r = await env.gw.order_send(OrderRequest.market("XAUUSD", Side.BUY, 0.01))
    assert r.retcode == Retcode.TRADE_DISABLED


async def test_requote_when_the_price_moved_beyond_deviation(env: Env) -> None:
    t = await env.gw.tick("EURUSD")
    stale = OrderRequest.market("EURUSD", Side.BUY, 0.1, price=round(t.ask - 30 * PT, 5), deviation=10)
    assert (await env.gw.order_send(stale)).retcode == Retcode.REQUOTE
    near = OrderRequest.market("EURUSD", Side.BUY, 0.1, price=round(t.ask - 5 * PT, 5), deviation=10)
    r = await env.gw.order_send(near)
    assert r.retcode == Retcode.DONE and r.price == t.ask


async def test_profit_follows_the_price(env: Env) -> None:
    ticket = await open_buy(env)
    env.terminal.advance(2 * 3600)
    t = await env.gw.tick("EURUSD")
    [pos] = await env.gw.positions()
    assert pos.ticket == ticket and pos.price_current == t.bid
    assert pos.profit == round((t.bid - pos.price_open) * 0.10 * 100_000, 2)
    acc = await env.gw.account()
    assert acc.equity == pytest.approx(10_000 + pos.profit, abs=1e-9)


async def test_jpy_profit_is_converted_to_the_account_currency(env: Env) -> None:
    r = await env.gw.order_send(OrderRequest.market("USDJPY", Side.SELL, 0.20))
    assert r.retcode == Retcode.DONE
    env.terminal.advance(3 * 3600)
    t = await env.gw.tick("USDJPY")
    [pos] = await env.gw.positions("USDJPY")
    profit_jpy = (pos.price_open - t.ask) * 0.20 * 100_000
    assert pos.profit == pytest.approx(round(profit_jpy / ((t.bid + t.ask) / 2), 2), abs=0.011)
    assert abs(pos.profit) > 0


async def test_eur_account_margin_and_profit(env: Env) -> None:
    login = env.terminal.open_demo_account(5_000, "EUR", 50)
    gw = await env.gateway_for(login)
    r = await gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 1.0))
    assert r.retcode == Retcode.DONE
    acc = await gw.account()
    assert acc.currency == "EUR" and acc.margin == 2_000.0  # 100,000 EUR / 50
    env.terminal.advance(3600)
    t = await gw.tick("EURUSD")
    [pos] = await gw.positions()
    usd = (t.bid - pos.price_open) * 100_000
    assert pos.profit == pytest.approx(round(usd / ((t.bid + t.ask) / 2), 2), abs=0.011)


async def test_stop_loss_triggers_as_price_moves(env: Env) -> None:
    t = await env.gw.tick("EURUSD")
    sl = round(t.bid - 15 * PT, 5)
    ticket = await open_buy(env, sl=sl)
    env.terminal.advance(4 * 3600)
    assert await env.gw.positions() == []
    deals = await env.gw.history_deals(WEDNESDAY_NOON, WEDNESDAY_NOON + timedelta(hours=5))
    out = [d for d in deals if d.entry == "out"]
    assert len(out) == 1
    [d] = out
    assert d.position_id == ticket and d.side is Side.SELL and d.comment == f"[sl {sl:.5f}]"
    assert sl - 10 * PT <= d.price <= sl
    assert d.profit == round((d.price - t.ask) * 0.10 * 100_000, 2)
    m1 = await env.gw.bars_range("EURUSD", Timeframe.M1, WEDNESDAY_NOON, WEDNESDAY_NOON + timedelta(hours=4))
    first = next(b for b in m1 if b.low <= sl)
    assert first.time <= d.time < first.time + 60
    assert (await env.gw.account()).balance == pytest.approx(10_000 + d.profit, abs=1e-9)


async def test_take_profit_triggers_on_a_sell(env: Env) -> None:
    t = await env.gw.tick("EURUSD")
    tp = round(t.ask - 15 * PT, 5)
    r = await env.gw.order_send(OrderRequest.market("EURUSD", Side.SELL, 0.10, tp=tp))
    assert r.retcode == Retcode.DONE
    env.terminal.advance(6 * 3600)
    assert await env.gw.positions() == []
    [d] = [
        d for d in await env.gw.history_deals(WEDNESDAY_NOON, WEDNESDAY_NOON + timedelta(hours=7)) if d.entry == "out"
    ]
    assert d.side is Side.BUY and d.price <= tp and d.comment.startswith("[tp ")
    assert d.profit == round((r.price - d.price) * 0.10 * 100_000, 2) > 0


async def test_partial_and_full_close(env: Env) -> None:
    ticket = await open_buy(env, 0.10)
    env.terminal.advance(600)
    t = await env.gw.tick("EURUSD")
    part = await env.gw.order_send(OrderRequest.close("EURUSD", ticket, 0.04))
    assert (part.retcode, part.volume, part.price) == (Retcode.DONE, 0.04, t.bid)
    [pos] = await env.gw.positions()
    assert pos.ticket == ticket and pos.volume == pytest.approx(0.06)
    rest = await env.gw.order_send(OrderRequest.close("EURUSD", ticket))
    assert rest.retcode == Retcode.DONE and rest.volume == pytest.approx(0.06)
    assert await env.gw.positions() == []
    again = await env.gw.order_send(OrderRequest.close("EURUSD", ticket))
    assert again.retcode == Retcode.POSITION_CLOSED
    deals = await env.gw.history_deals(WEDNESDAY_NOON, WEDNESDAY_NOON + timedelta(hours=1), symbol="EURUSD")
    outs = [d for d in deals if d.entry == "out"]
    assert [d.volume for d in outs] == pytest.approx([0.04, 0.06])
    acc = await env.gw.account()
    assert acc.balance == pytest.approx(10_000 + sum(d.profit for d in outs), abs=1e-9)
    assert outs[0].profit == round((t.bid - pos.price_open) * 0.04 * 100_000, 2)


async def test_modify_sl_tp(env: Env) -> None:
    ticket = await open_buy(env)
    t = await env.gw.tick("EURUSD")
    sl, tp = round(t.bid - 40 * PT, 5), round(t.bid + 80 * PT, 5)
    r = await env.gw.order_send(OrderRequest.modify("EURUSD", ticket, sl=sl, tp=tp))
    assert r.retcode == Retcode.DONE
    [pos] = await env.gw.positions()
    assert (pos.sl, pos.tp) == (sl, tp)
    bad = await env.gw.order_send(OrderRequest.modify("EURUSD", ticket, sl=round(t.bid + 40 * PT, 5)))
    assert bad.retcode == Retcode.INVALID_STOPS
    gone = await env.gw.order_send(OrderRequest.modify("EURUSD", ticket + 999, sl=sl))
    assert gone.retcode == Retcode.POSITION_CLOSED


async def test_history_deals_and_monotonic_tickets(env: Env) -> None:
    first = await env.gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.10, client_id="req-1"))
    env.terminal.advance(60)
    second = await env.gw.order_send(OrderRequest.market("XAUUSD", Side.SELL, 0.05))
    env.terminal.advance(60)
    close = await env.gw.order_send(OrderRequest.close("EURUSD", first.order))
    assert first.order < second.order < close.order and first.deal < second.deal < close.deal
    deals = await env.gw.history_deals(WEDNESDAY_NOON, WEDNESDAY_NOON + timedelta(minutes=5))
    assert [(d.ticket, d.entry, d.symbol) for d in deals] == [
        (first.deal, "in", "EURUSD"),
        (second.deal, "in", "XAUUSD"),
        (close.deal, "out", "EURUSD"),
    ]
    assert deals[0].comment == "req-1" and deals[0].order == first.order
    assert deals[2].position_id == first.order
    only_gold = await env.gw.history_deals(WEDNESDAY_NOON, WEDNESDAY_NOON + timedelta(minutes=5), symbol="XAUUSD")
    assert [d.ticket for d in only_gold] == [second.deal]


async def test_order_check_computes_margin_without_trading(env: Env) -> None:
    t = await env.gw.tick("EURUSD")
    before = await env.gw.account()
    check = await env.gw.order_check(OrderRequest.market("EURUSD", Side.BUY, 1.0))
    margin = 100_000 / 100 * (t.bid + t.ask) / 2
    assert check.retcode == Retcode.DONE
    assert check.margin == pytest.approx(margin, abs=0.01)
    assert check.margin_free == pytest.approx(before.margin_free - margin, abs=0.01)
    assert check.equity == before.equity
    assert await env.gw.positions() == []
    huge = await env.gw.order_check(OrderRequest.market("EURUSD", Side.BUY, 50.0))
    assert huge.retcode == Retcode.NO_MONEY and huge.margin_free < 0


async def test_stop_out_closes_the_position(env: Env) -> None:
    ticket = await open_buy(env, 1.0)
    env.terminal.deposit(env.login, -9_500, "Withdrawal")  # equity ~500 vs ~1,080 margin
    env.terminal.advance(5)
    assert await env.gw.positions() == []
    [d] = [
        d for d in await env.gw.history_deals(WEDNESDAY_NOON, WEDNESDAY_NOON + timedelta(minutes=1)) if d.entry == "out"
    ]
    assert d.position_id == ticket and d.comment.startswith("[so ")
    level = float(d.comment[4:-2])
    assert level < env.terminal.stop_out_level


# -- errors, faults, determinism --------------------------------------------------------------


async def test_unknown_symbol_suggests(env: Env) -> None:
    with pytest.raises(UnknownSymbol) as err:
        await env.gw.tick("EURUSDX")
    assert err.value.code == "MKT-UNKNOWN-SYMBOL" and err.value.suggestions[0] == "EURUSD"
    with pytest.raises(UnknownSymbol) as err:
        await env.gw.bars("GOLD", Timeframe.H1, 10)
    assert err.value.suggestions == ["XAUUSD"]
    with pytest.raises(UnknownSymbol) as err:
        await env.gw.order_send(OrderRequest.market("eurusd", Side.BUY, 0.1))
    assert err.value.suggestions[0] == "EURUSD"


async def test_disconnect_then_recovery(env: Env) -> None:
    env.terminal.inject("disconnect", count=1)
    with pytest.raises(GatewayUnavailable) as err:
        await env.gw.tick("EURUSD")
    assert err.value.code == "MKT-UNAVAILABLE"
    assert (await env.gw.tick("EURUSD")).bid > 0  # re-initialized on its own

    env.terminal.inject("disconnect", seconds=30)
    for call in (env.gw.account(), env.gw.tick("EURUSD"), env.gw.positions()):
        with pytest.raises(GatewayUnavailable):
            await call
    env.terminal.advance(31)
    assert (await env.gw.account()).login == env.login


async def test_timeout_fault(env: Env) -> None:
    env.terminal.inject("timeout", count=1)
    with pytest.raises(GatewayTimeout) as err:
        await env.gw.account()
    assert err.value.code == "MKT-TIMEOUT"
    assert (await env.gw.account()).balance == 10_000


async def test_requote_fault(env: Env) -> None:
    env.terminal.inject("requote", count=1)
    assert (await env.gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.1))).retcode == Retcode.REQUOTE
    assert (await env.gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.1))).retcode == Retcode.DONE


async def test_same_seed_same_market(env: Env) -> None:
    twin = SimTerminal(SEED, clock=env.clock)
    other = SimTerminal(SEED + 1, clock=env.clock)
    twin_gw, other_gw = SimGateway(twin, twin.open_demo_account()), SimGateway(other, other.open_demo_account())
    for sym in ("EURUSD", "BTCUSD"):
        assert await env.gw.tick(sym) == await twin_gw.tick(sym)
        assert await env.gw.bars(sym, Timeframe.M5, 50) == await twin_gw.bars(sym, Timeframe.M5, 50)
        assert (await env.gw.tick(sym)).bid != (await other_gw.tick(sym)).bid


async def test_ping(env: Env) -> None:
    ms = await env.gw.ping()
    assert 0 <= ms < 2_000
