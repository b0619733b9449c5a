"""Auto-trading as a user meets it: the /trading panel, the tier gate, orders from the agent runner's
consensus reported in chat, the kill switch, the live second confirmation, consensus beside /positions."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from bot.notify import DirectNotifier
from bot.views.trading import AutoTradeReporter
from domain.agents.consensus import AgentStats
from domain.db.models import AuditRow, AutoTradeRow, OrderRow, TradingProfileRow, UserRow
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from domain.market.models import Timeframe
from tests.fakes.telegram import Call
from tests.harness import Harness

AGENTS = ("trend", "reversion", "momentum", "breakout", "learner")


async def _tier(harness: Harness, user: int, tier: str, lang: str = "en") -> None:
    await harness.send("/start", user=user, lang=lang)
    async with harness.app.sessionmaker() as s:
        (await s.get(UserRow, user)).tier = tier  # type: ignore[union-attr]
        await s.commit()
    harness.app.users.forget(user)


async def _track_record(harness: Harness, symbol: str = "XAUUSD", alpha: float = 30, beta: float = 10) -> None:
    """Agents with a 75% hit rate on the symbol: the real agents' votes then form a consensus."""
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        for agent in AGENTS:
            await uow.agents.put(AgentStats(agent, symbol, "H1", alpha=alpha, beta=beta))
        await uow.commit()


def _reports_to_chat(harness: Harness) -> None:
    notifier = DirectNotifier(harness.bot)
    harness.app.autotrader.reporter = AutoTradeReporter(harness.app.i18n, lambda: notifier)


def _edit(calls: list[Call]) -> Call:
    return next(c for c in calls if c.method == "editMessageText")


def _alert(calls: list[Call]) -> str:
    return next(c for c in calls if c.method == "answerCallbackQuery").params.get("text") or ""


async def _profile(harness: Harness, user: int = 1001) -> TradingProfileRow | None:
    async with harness.app.sessionmaker() as s:
        return await s.get(TradingProfileRow, user)


async def _orders(harness: Harness) -> list[OrderRow]:
    async with harness.app.sessionmaker() as s:
        return list((await s.execute(select(OrderRow).order_by(OrderRow.created_at))).scalars())


async def _audit(harness: Harness, action: str) -> list[AuditRow]:
    async with harness.app.sessionmaker() as s:
        return list((await s.execute(select(AuditRow).where(AuditRow.action == action))).scalars())


async def _use_gold_only(harness: Harness, user: int = 1001, lang: str = "en") -> None:
    await harness.press(f"at:on:{user}:", user=user, lang=lang)
    await harness.press(f"at:sym:{user}:XAUUSD", user=user, lang=lang)
    await harness.press(f"at:sym:{user}:EURUSD", user=user, lang=lang)


async def test_free_user_sees_what_an_upgrade_unlocks_and_cannot_turn_it_on(
    harness: Harness, clock: ManualClock
) -> None:
    home = (await harness.send("/trading"))[0]
    assert "Auto-trading: off" in home.text
    assert ("🤖 Auto-trading settings", "at:home:1001:") in home.buttons
    panel = _edit(await harness.press("at:home:1001:"))
    assert "🔒 Pro plan" in panel.text and "sized by the Risk agent" in panel.text
    assert any(data == "plans" for _, data in panel.buttons)
    assert not any(data and data.startswith("at:on") for _, data in panel.buttons)
    toggled = await harness.press("tg:auto:1")
    assert "Auto-trading needs the Pro plan" in _alert(toggled)
    forced = await harness.press("at:on:1001:")
    assert "Auto-trading needs the Pro plan" in _alert(forced)
    assert "🔒 Pro plan" in _edit(forced).text
    profile = await _profile(harness)
    assert profile is None or not profile.auto_trading
    assert await _audit(harness, "autotrade.switched") == []


async def test_pro_user_sets_up_the_panel(harness: Harness, clock: ManualClock) -> None:
    await _tier(harness, 1001, "pro")
    await _track_record(harness)
    panel = _edit(await harness.press("at:home:1001:"))
    assert "Auto-trading</b> · off" in panel.text and "Orders go to: demo account" in panel.text
    assert "Symbols: EURUSD" in panel.text and "threshold 60%" in panel.text
    assert ("▶️ Turn on", "at:on:1001:") in panel.buttons
    on = _edit(await harness.press("at:on:1001:"))
    assert "Auto-trading</b> · on" in on.text
    assert (await _profile(harness)).auto_trading  # type: ignore[union-attr]
    await harness.press("at:sym:1001:XAUUSD")
    await harness.press("at:thr:1001:70")
    await harness.press("at:risk:1001:0.5")
    final = _edit(await harness.press("at:sym:1001:EURUSD"))
    assert "Symbols: XAUUSD" in final.text and "threshold 70%" in final.text and "risk per trade 0.5%" in final.text
    assert ("• 70%", "at:thr:1001:70") in final.buttons and ("✅ XAUUSD", "at:sym:1001:XAUUSD") in final.buttons
    # the pending consensus from the real agents, with their (seeded) 75% track record
    assert re.search(r"XAUUSD: 🔴 SELL · confidence 75% · agreement \d+% — ✅ meets your threshold", final.text)
    typed = (await harness.send("/trading threshold 99"))[0]
    assert "AUT-RANGE" in typed.text
    typed = (await harness.send("/trading symbol gbpjpy"))[0]
    assert "Symbols: XAUUSD, GBPJPY" in typed.text
    settings = await _audit(harness, "autotrade.settings")
    assert len(settings) == 5 and all(row.surface == "chat" for row in settings)


@pytest.mark.parametrize(
    ("lang", "words"),
    [("ru", ("Автоторговля", "Включить", "демо-счёт")),
     ("es", ("Trading automático", "Activar", "cuenta demo"))],
)  # fmt: skip
async def test_panel_and_report_localized(
    harness: Harness, clock: ManualClock, lang: str, words: tuple[str, ...]
) -> None:
    await _tier(harness, 1001, "pro", lang)  # reports go out in the user's language
    panel = _edit(await harness.press("at:home:1001:", lang=lang))
    assert words[0] in panel.text and words[2] in panel.text
    assert any(words[1] in label for label, _ in panel.buttons)
    await _track_record(harness)
    await _use_gold_only(harness, lang=lang)
    _reports_to_chat(harness)
    before = len(harness.telegram.calls)
    await harness.app.agent_runner.run_once()
    report = next(c for c in harness.telegram.calls[before:] if c.method == "sendMessage")
    assert ("Авто" if lang == "ru" else "automática") in report.text
    assert "XAUUSD" in report.text and "Auto-trade placed" not in report.text


async def test_pro_user_gets_a_demo_order_from_the_runner_reported_in_chat_then_the_kill_switch_stops_it(
    harness: Harness, clock: ManualClock
) -> None:
    await _tier(harness, 1001, "pro")
    await _track_record(harness)
    await _use_gold_only(harness)
    _reports_to_chat(harness)
    before = len(harness.telegram.calls)
    await harness.app.agent_runner.run_once()  # every watched symbol's closed bar: votes, consensus, listeners
    sent = [c for c in harness.telegram.calls[before:] if c.method == "sendMessage"]
    [report] = [c for c in sent if "Auto-trade" in c.text]
    assert report.params["chat_id"] in (1001, "1001")
    assert "Auto-trade placed</b> · demo account" in report.text
    assert "🧪 Demo account: it trades simulated prices, with no real money." in report.text
    assert re.search(r"SELL [\d.]+ lots XAUUSD at [\d.]+", report.text)
    assert "Risk at stop loss" in report.text and "confidence 75%" in report.text
    assert ("🛑 Kill switch", "tg:kill:1") in report.buttons
    [order] = await _orders(harness)
    assert order.user_id == 1001 and order.account_kind == "demo" and order.status == "done"
    assert order.symbol == "XAUUSD" and order.params["auto"] is True and order.params["side"] == "sell"
    executed = await _audit(harness, "trade.executed")
    assert [row.surface for row in executed] == ["worker"]
    [auto] = await _audit(harness, "autotrade.order")
    assert auto.details["outcome"] == "placed" and auto.details["symbol"] == "XAUUSD"
    positions = (await harness.send("/positions"))[0]
    assert "XAUUSD SELL" in positions.text and "AI consensus (H1): SELL 75% — supports holding" in positions.text
    # the same bar again (a second pass, a restart): nothing more
    assert await harness.app.agent_runner.run_once() == 0
    # the kill switch, pressed from the report: the next bar's consensus places and sends nothing
    assert "Kill switch: ON" in _edit(await harness.press("tg:kill:1")).text
    closing = await harness.send("/close all")
    await harness.press(next(d for _, d in closing[0].buttons if d and d.startswith("tr:ok:")))
    clock.advance(3600)
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        decision = await harness.app.agents.consensus(uow, "XAUUSD", Timeframe.H1)
    before = len(harness.telegram.calls)
    results = await harness.app.autotrader.on_decision("XAUUSD", Timeframe.H1, decision)
    assert [r.outcome.value for r in results] == ["killed"]
    await harness.app.agent_runner.run_once()
    assert not any("Auto-trade" in c.text for c in harness.telegram.calls[before:])
    assert len([o for o in await _orders(harness) if o.params.get("auto")]) == 1
    async with harness.app.sessionmaker() as s:
        claims = list((await s.execute(select(AutoTradeRow))).scalars())
    assert len(claims) == 1


async def test_other_users_and_forged_buttons_change_nothing(harness: Harness, clock: ManualClock) -> None:
    await _tier(harness, 1001, "pro")
    await _tier(harness, 2002, "pro")
    stolen = await harness.press("at:on:1001:", user=2002)
    assert "not yours" in _alert(stolen)
    assert await _profile(harness, 1001) is None and await _profile(harness, 2002) is None
    assert "not yours" in _alert(await harness.press("at:confirm:1001:deadbeef"))  # never asked for
    assert "TRD-INVALID" in _alert(await harness.press("at:thr:1001:abc"))
    assert "MKT-UNKNOWN-SYMBOL" in _alert(await harness.press("at:sym:1001:<b>x"))
    junk = await harness.press("at:on")
    assert not any("Auto-trading</b>" in c.text for c in junk)
    assert await _audit(harness, "autotrade.switched") == [] and await _audit(harness, "autotrade.settings") == []


async def test_live_auto_trading_needs_a_second_confirmation(harness: Harness, clock: ManualClock) -> None:
    await _tier(harness, 1001, "pro")
    no_live = await harness.press("at:live:1001:")
    assert "TRD-NO-LIVE" in _alert(no_live)
    login = harness.app.market.hub.terminal.open_real_account("Live-Pass-9", 5000.0)
    await harness.press("tg:link:0")
    await harness.send(str(login))
    await harness.send("HybridTrader-Sim")
    await harness.send("Live-Pass-9")
    await harness.press("tg:live:0")
    panel = _edit(await harness.press("at:on:1001:"))
    assert "Orders go to: demo account" in panel.text  # live is in use, but not confirmed for auto-trading
    ask = _edit(await harness.press("at:live:1001:"))
    assert "Live auto-trading" in ask.text and str(login) in ask.text
    confirm = next(d for _, d in ask.buttons if d and d.startswith("at:confirm:1001:"))
    assert "not yours" in _alert(await harness.press(confirm[:-1] + ("0" if confirm[-1] != "0" else "1")))
    assert "not yours" in _alert(await harness.press(confirm[:-2] + "éé"))  # non-ASCII: refused, not a BUG-
    done = _edit(await harness.press(confirm))
    assert f"Orders go to: live account {login} (confirmed)" in done.text
    assert "not yours" in _alert(await harness.press(confirm))  # one-time
    assert len(await _audit(harness, "autotrade.live_confirmed")) == 1
    back = _edit(await harness.press("at:demo:1001:"))
    assert "Orders go to: demo account" in back.text


async def test_positions_show_the_consensus_for_holding(harness: Harness, clock: ManualClock) -> None:
    await _track_record(harness)
    for side in ("buy", "sell"):
        preview = await harness.send(f"/trade {side} XAUUSD 0.01")
        await harness.press(next(d for _, d in preview[0].buttons if d and d.startswith("tr:ok:")))
    await harness.press(next(d for _, d in (await harness.send("/trade buy EURUSD 0.01"))[0].buttons
                             if d and d.startswith("tr:ok:")))  # fmt: skip
    text = (await harness.send("/positions"))[0].text
    assert "AI consensus (H1): SELL 75% — against holding" in text
    assert "AI consensus (H1): SELL 75% — supports holding" in text
    assert "AI consensus (H1): no consensus" in text  # EURUSD: the agents have no track record there
    ru = (await harness.send("/positions", lang="ru"))[0].text
    assert "консенсус" in ru.lower()


async def test_direct_listener_call_with_a_decision_reports_a_refusal_by_a_risk_limit(
    harness: Harness, clock: ManualClock
) -> None:
    await _tier(harness, 1001, "pro")
    await _track_record(harness)
    await _use_gold_only(harness)
    await harness.send("/risk max_positions 1")
    await harness.press(next(d for _, d in (await harness.send("/trade buy EURUSD 0.01"))[0].buttons
                             if d and d.startswith("tr:ok:")))  # fmt: skip
    _reports_to_chat(harness)
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        decision = await harness.app.agents.consensus(uow, "XAUUSD", Timeframe.H1)
    before = len(harness.telegram.calls)
    await harness.app.autotrader.listen("XAUUSD", Timeframe.H1, decision)
    [report] = [c for c in harness.telegram.calls[before:] if c.method == "sendMessage"]
    assert "Auto-trade blocked" in report.text and "open positions: " in report.text and "; your limit is 1" in report.text
    assert [o.status for o in await _orders(harness) if o.params.get("auto")] == ["blocked"]


async def test_reports_go_through_the_app_notifier_with_their_key(harness: Harness, clock: ManualClock) -> None:
    """In production the report is queued in the notification outbox (sent by its worker), once per signal."""
    from domain.db.models import NotificationRow

    await _tier(harness, 1001, "pro")
    await _track_record(harness)
    await _use_gold_only(harness)
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        decision = await harness.app.agents.consensus(uow, "XAUUSD", Timeframe.H1)
    for _ in range(2):
        await harness.app.autotrader.listen("XAUUSD", Timeframe.H1, decision)
    async with harness.app.sessionmaker() as s:
        queued = list((await s.execute(select(NotificationRow).where(NotificationRow.user_id == 1001))).scalars())
    assert [row.key for row in queued] == [f"autotrade:1001:XAUUSD:H1:{decision.time}"]
    assert "Auto-trade placed" in queued[0].text
