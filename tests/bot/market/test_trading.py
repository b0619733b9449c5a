"""Trading commands as a user meets them: preview, confirm once, risk limits, close, live accounts."""

from __future__ import annotations

import asyncio
import re

import pytest
from sqlalchemy import func, select

from domain.db.models import AuditRow, OrderRow, TradingAccountRow
from domain.market.clock import ManualClock
from tests.harness import Harness


def _confirm(calls: list) -> str:  # type: ignore[type-arg]
    return next(data for c in calls for _, data in c.buttons if data and data.startswith("tr:ok:"))


async def _audit(harness: Harness, action: str) -> list[AuditRow]:
    async with harness.app.sessionmaker() as s:
        return list((await s.execute(select(AuditRow).where(AuditRow.action == action))).scalars())


async def _positions(harness: Harness, user: int = 1001) -> list:  # type: ignore[type-arg]
    async with harness.app.sessionmaker() as s:
        row = (await s.execute(select(TradingAccountRow).where(TradingAccountRow.user_id == user))).scalars().first()
    assert row is not None
    return await harness.app.market.hub.demo_gateway(row.login).positions()


async def test_trade_preview_then_confirm_places_one_order_on_double_tap(harness: Harness, clock: ManualClock) -> None:
    preview = await harness.send("/trade buy EURUSD 0.123 sl=1.17 tp=1.5")
    text = preview[0].text
    assert "Order preview" in text and "0.12 lots EURUSD" in text and "0.123 → 0.12" in text
    assert "Margin" in text and "% of equity" in text
    data = _confirm(preview)
    first = await harness.press(data)
    assert "Order placed" in next(c for c in first if c.method == "editMessageText").text
    second = await harness.press(data)
    assert "already placed" in next(c for c in second if c.method == "editMessageText").text
    assert len(await _positions(harness)) == 1
    assert len(await _audit(harness, "trade.executed")) == 1


async def test_concurrent_confirm_taps_send_once(harness: Harness, clock: ManualClock) -> None:
    data = _confirm(await harness.send("/trade sell XAUUSD 0.01"))
    await asyncio.gather(*(harness.press(data, message_id=i) for i in range(5)))
    assert len(await _positions(harness)) == 1
    async with harness.app.sessionmaker() as s:
        assert (await s.execute(select(OrderRow.status))).scalars().all() == ["done"]


async def test_forged_and_foreign_confirmations_are_refused_and_audited(harness: Harness, clock: ManualClock) -> None:
    data = _confirm(await harness.send("/trade buy EURUSD 0.1"))
    stolen = await harness.press(data, user=2002)
    assert "not yours" in stolen[-1].text
    forged = await harness.press("tr:ok:deadbeefdeadbeef")
    assert "not yours" in forged[-1].text
    garbage = await harness.press("tr:ok")
    assert not any("Order placed" in c.text for c in garbage)
    assert len(await _audit(harness, "trade.confirm_refused")) == 2
    assert await _positions(harness) == []


async def test_cancel_sends_nothing(harness: Harness, clock: ManualClock) -> None:
    calls = await harness.send("/trade buy EURUSD 0.1")
    cancel = next(data for _, data in calls[0].buttons if data and data.startswith("tr:no:"))
    cancelled = await harness.press(cancel)
    assert "Nothing was sent" in next(c for c in cancelled if c.method == "editMessageText").text
    confirm = await harness.press(cancel.replace("tr:no:", "tr:ok:"))
    assert "cancelled" in next(c for c in confirm if c.method == "editMessageText").text
    assert await _positions(harness) == []


async def test_risk_limits_block_and_audit(harness: Harness, clock: ManualClock) -> None:
    shown = await harness.send("/risk max_volume 0.5")
    assert "<b>0.5</b>" in shown[0].text
    blocked = await harness.press(_confirm(await harness.send("/trade buy EURUSD 1")))
    text = next(c for c in blocked if c.method == "editMessageText").text
    assert "blocked by your risk limits" in text and "over your limit of 0.5" in text
    await harness.send("/risk max_positions 1")
    await harness.press(_confirm(await harness.send("/trade buy EURUSD 0.1")))
    second = await harness.press(_confirm(await harness.send("/trade buy EURUSD 0.1")))
    blocked = next(c for c in second if c.method == "editMessageText").text
    assert "open positions: " in blocked and "; your limit is 1" in blocked
    await harness.send("/risk max_positions 10")
    risky = await harness.press(_confirm(await harness.send("/trade buy XAUUSD 0.5 sl=1")))
    assert "this trade risks" in next(c for c in risky if c.method == "editMessageText").text
    assert len(await _audit(harness, "trade.blocked")) == 3
    bad = await harness.send("/risk max_volume 0")
    assert "TRD-LIMIT-RANGE" in bad[0].text


async def test_kill_switch_blocks_new_orders_at_once(harness: Harness, clock: ManualClock) -> None:
    data = _confirm(await harness.send("/trade buy EURUSD 0.1"))
    state = await harness.send("/trading")
    assert "Account in use: demo" in state[0].text and "Kill switch: off" in state[0].text
    await harness.press("tg:kill:1")
    blocked = await harness.press(data)
    assert "kill switch is on" in next(c for c in blocked if c.method == "editMessageText").text
    assert await _positions(harness) == []
    auto = await harness.press("tg:auto:1")  # auto-trading is a Pro feature (tests/bot/market/test_autotrading.py)
    assert "needs the Pro plan" in next(c for c in auto if c.method == "answerCallbackQuery").params["text"]


async def test_wrong_side_stops_and_bad_numbers(harness: Harness, clock: ManualClock) -> None:
    assert "TRD-STOPS-SIDE" in (await harness.send("/trade buy EURUSD 0.1 sl=5"))[0].text
    assert "TRD-INVALID" in (await harness.send("/trade buy EURUSD abc"))[0].text
    assert "TRD-VOLUME-RANGE" in (await harness.send("/trade buy EURUSD 0.001"))[0].text
    unknown = (await harness.send("/trade buy EURSUD 0.1"))[0].text
    assert "MKT-UNKNOWN-SYMBOL" in unknown and "Similar: EURUSD" in unknown
    nothing_like = (await harness.send("/trade buy QZQZQZ 0.1"))[0].text  # no similar symbol: no empty list
    assert "I don't know the symbol QZQZQZ.\n" in nothing_like and "Similar" not in nothing_like
    assert await _positions(harness) == []


async def test_positions_close_partial_symbol_all_and_foreign_ticket(harness: Harness, clock: ManualClock) -> None:
    await harness.press(_confirm(await harness.send("/trade buy EURUSD 0.2")))
    await harness.press(_confirm(await harness.send("/trade sell GBPUSD 0.1")))
    listing = (await harness.send("/positions"))[0]
    tickets = [int(t) for t in re.findall(r"#(\d+) ", listing.text)]
    assert len(tickets) == 2 and "Floating P/L" in listing.text
    assert any(data == f"ps:close:{tickets[0]}" for _, data in listing.buttons)
    # someone else's ticket
    other = await harness.send(f"/close {tickets[0]}", user=2002)
    assert "no open position" in other[0].text
    assert await _audit(harness, "trade.close_refused")
    # partial close
    part = await harness.send(f"/close {tickets[0]} 0.05")
    assert "0.05/0.2" in part[0].text
    await harness.press(_confirm(part))
    volumes = sorted(p.volume for p in await _positions(harness))
    assert volumes == [0.1, 0.15]
    clock.advance(60)
    by_symbol = await harness.send("/close gbpusd")
    await harness.press(_confirm(by_symbol))
    everything = await harness.send("/close all")
    await harness.press(_confirm(everything))
    assert await _positions(harness) == []
    history = (await harness.send("/history"))[0]
    assert "Closed deals" in history.text and "3 deals" in history.text


async def test_modify_stops_through_the_form(harness: Harness, clock: ManualClock) -> None:
    await harness.press(_confirm(await harness.send("/trade buy EURUSD 0.1")))
    ticket = (await _positions(harness))[0].ticket
    prompt = await harness.press(f"ps:sltp:{ticket}")
    assert "Send new levels" in prompt[-1].text
    done = await harness.send("sl=1.0 tp=1.6")
    assert "Stops updated" in done[0].text
    pos = (await _positions(harness))[0]
    assert pos.sl == 1.0 and pos.tp == 1.6


@pytest.mark.parametrize(
    ("lang", "words"),
    [("ru", ("Баланс", "Открытые позиции", "Закрытые сделки", "Лимиты риска", "Торговля")),
     ("es", ("Saldo", "Posiciones abiertas", "Operaciones cerradas", "Límites de riesgo", "Trading"))],
)  # fmt: skip
async def test_reading_commands_localized(harness: Harness, clock: ManualClock, lang: str, words: tuple) -> None:  # type: ignore[type-arg]
    for command, word in zip(("/balance", "/positions", "/history", "/risk", "/trading"), words, strict=True):
        calls = await harness.send(command, lang=lang)
        assert word in calls[0].text, (command, calls[0].text)
    preview = await harness.send("/trade buy EURUSD 0.1", lang=lang)
    assert ("Подтвердить" if lang == "ru" else "Confirmar") in str(preview[0].buttons)


async def test_balance_shows_demo_account(harness: Harness, clock: ManualClock) -> None:
    text = (await harness.send("/balance"))[0].text
    assert "demo account" in text and "10,000.00 USD" in text and "Free margin" in text


async def test_live_account_needs_basic(harness: Harness, clock: ManualClock) -> None:
    calls = await harness.press("tg:link:0")
    assert "need the Basic plan" in calls[-1].text
    assert "need the Basic plan" in (await harness.press("tg:live:0"))[-1].text
    ru = await harness.press("tg:link:0", lang="ru")
    assert "/premium" in ru[-1].text and "Live MT5" not in ru[-1].text


async def test_link_live_account_encrypts_and_deletes_password(harness: Harness, clock: ManualClock) -> None:
    await harness.send("/start")
    async with harness.app.sessionmaker() as s:
        from domain.db.models import UserRow

        (await s.get(UserRow, 1001)).tier = "basic"  # type: ignore[union-attr]
        await s.commit()
    harness.app.users.forget(1001)
    terminal = harness.app.market.hub.terminal
    login = terminal.open_real_account("s3cret-Pa55", 5000.0)
    await harness.press("tg:link:0")
    await harness.send(str(login))
    await harness.send("HybridTrader-Sim")
    before = len(harness.telegram.calls)
    linked = await harness.send("s3cret-Pa55")
    methods = [c.method for c in harness.telegram.calls[before:]]
    assert "deleteMessage" in methods
    assert "linked" in linked[-1].text and "s3cret" not in linked[-1].text
    async with harness.app.sessionmaker() as s:
        row = (await s.execute(select(TradingAccountRow).where(TradingAccountRow.kind == "live"))).scalar_one()
        assert row.login == login and row.password_enc and "s3cret" not in row.password_enc
        audit = (await s.execute(select(AuditRow))).scalars().all()
        assert all("s3cret" not in str(a.details) for a in audit)
    switched = await harness.press("tg:live:0")
    assert f"Account in use: live {login}" in next(c for c in switched if c.method == "editMessageText").text
    assert "5,000.00 USD" in (await harness.send("/balance"))[0].text
    # wrong password is refused, nothing stored
    await harness.press("tg:link:0")
    await harness.send(str(login))
    await harness.send("HybridTrader-Sim")
    refused = await harness.send("wrong")
    assert "refused" in refused[-1].text
    async with harness.app.sessionmaker() as s:
        n = (await s.execute(select(func.count()).select_from(TradingAccountRow).where(
            TradingAccountRow.kind == "live"))).scalar_one()  # fmt: skip
    assert n == 1


async def test_gateway_down_is_explained_and_nothing_is_sent(harness: Harness, clock: ManualClock) -> None:
    data = _confirm(await harness.send("/trade buy EURUSD 0.1"))
    harness.app.market.hub.terminal.inject("disconnect", count=None, seconds=30)
    down = await harness.press(data)
    assert "MKT-UNAVAILABLE" in down[-1].text
    assert "MKT-UNAVAILABLE" in (await harness.send("/price EURUSD"))[-1].text
    clock.advance(31)
    assert await _positions(harness) == []
    retry = await harness.press(data)  # the failed order is final: tapping again never sends it
    assert "not sent: the trading server failed" in next(c for c in retry if c.method == "editMessageText").text
    assert await _positions(harness) == []


async def test_status_shows_the_gateway_line(harness: Harness, clock: ManualClock) -> None:
    text = (await harness.send("/status"))[0].text
    assert re.search(r"MT5 gateway: sim · ping [0-9.]+ ms · [0-9.]+ ticks/s", text), text


async def test_inline_trade_flow_and_forged_symbol(harness: Harness, clock: ManualClock) -> None:
    start = (await harness.send("/trade", lang="es"))[0]
    assert "O elige un símbolo" in start.text and ("XAUUSD", "tf:side:XAUUSD::") in start.buttons
    side = await harness.press("tf:side:XAUUSD::")
    assert ("🟢 Buy", "tf:vol:XAUUSD:buy:") in next(c for c in side if c.method == "editMessageText").buttons
    volume = await harness.press("tf:vol:XAUUSD:buy:")
    assert "tf:go:XAUUSD:buy:0.1" in str(next(c for c in volume if c.method == "editMessageText").buttons)
    preview = await harness.press("tf:go:XAUUSD:buy:0.1")
    edited = next(c for c in preview if c.method == "editMessageText")
    assert "BUY 0.1 lots XAUUSD" in edited.text
    await harness.press(_confirm([edited]))
    assert [p.symbol for p in await _positions(harness)] == ["XAUUSD"]
    forged = await harness.press("tf:go:__import__('os'):buy:0.1")
    assert "MKT-" in forged[-1].text
    assert len(await _positions(harness)) == 1
