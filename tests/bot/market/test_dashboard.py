"""The /analytics dashboard (aiogram-dialog) through the real Dispatcher and middlewares on both stacks:
navigation and back, refresh in place, closing a position and deleting an alert with confirmation,
premium panels vs. the upgrade window, the WebApp button, stale and foreign buttons, worker refreshes."""

from __future__ import annotations

import asyncio

from bot.settings import Settings
from bot.views.menu import MenuCB
from domain.db.trading import SqlAlertStore
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from tests.bot.market.conftest import Unlimited
from tests.bot.market.test_analytics import ANN, set_tier, trade
from tests.fakes.telegram import Call, FakeTelegram
from tests.harness import Harness, build_harness

BOB = 2002


def shown(calls: list[Call]) -> Call:
    """The dashboard message this update sent or edited."""
    return next(c for c in reversed(calls) if c.method in ("sendMessage", "editMessageText"))


def button(calls: list[Call], label: str) -> str:
    found = [d for t, d in shown(calls).buttons if t.startswith(label) and d]
    assert found, f"no button {label!r} in {[t for t, _ in shown(calls).buttons]}"
    return found[0]


def labels(calls: list[Call]) -> list[str]:
    return [t for t, _ in shown(calls).buttons]


async def press(harness: Harness, calls: list[Call], label: str, user: int = ANN) -> list[Call]:
    return await harness.press(button(calls, label), user=user, message_id=100)


async def positions(harness: Harness, user: int = ANN) -> list:  # type: ignore[type-arg]
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        account = await harness.app.market.trading.demo_account(uow, user)
    return await harness.app.market.hub.demo_gateway(account.login).positions()


async def test_navigation_back_and_refresh_in_place(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "pro")
    await trade(harness, "/trade buy EURUSD 1")
    main = await harness.send("/analytics")
    text = shown(main).text
    assert shown(main).method == "sendMessage"
    assert "Dashboard</b> · demo account" in text and "1 open position" in text and "Updated 10:00:00" in text
    assert labels(main) == ["💼 Portfolio", "🔔 Alerts", "👀 Watchlist", "🤖 Agents", "⚙️ Settings", "🔄 Refresh",
                            "✖️ Close"]  # fmt: skip
    portfolio = await press(harness, main, "💼 Portfolio")
    assert shown(portfolio).method == "editMessageText" and shown(portfolio).params["message_id"] == "100"
    assert "Portfolio</b>" in shown(portfolio).text and "EURUSD BUY 1 @" in shown(portfolio).text
    clock.advance(65)
    refreshed = await press(harness, portfolio, "🔄 Refresh")
    assert shown(refreshed).method == "editMessageText" and "Updated 10:01:05" in shown(refreshed).text
    back = await press(harness, refreshed, "⬅️ Back")
    assert "Dashboard</b>" in shown(back).text
    settings = await press(harness, back, "⚙️ Settings")
    assert "Kill switch: off" in shown(settings).text and "• Price alerts: on" in shown(settings).text
    toggled = await press(harness, settings, "✅ Price alerts")
    assert "• Price alerts: off" in shown(toggled).text
    stored = await harness.stored_user(ANN)
    assert stored is not None and stored.notifications.get("alerts") is False


async def test_close_position_asks_then_closes_once(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "pro")
    await trade(harness, "/trade buy EURUSD 1")
    portfolio = await press(harness, await harness.send("/analytics"), "💼 Portfolio")
    ask = await press(harness, portfolio, "✖️ Close #")
    assert "Close positions?" in shown(ask).text and labels(ask) == ["✅ Confirm", "✖️ Cancel"]
    assert len(await positions(harness)) == 1  # nothing happens before the confirmation
    confirm = button(ask, "✅ Confirm")
    done = await harness.press(confirm, message_id=100)
    assert "Position closed" in shown(done).text and "No open positions" in shown(done).text
    again = await harness.press(confirm, message_id=100)  # a double tap changes nothing
    assert "Position closed" not in shown(again).text
    assert await positions(harness) == []


async def test_cancel_keeps_the_position(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "pro")
    await trade(harness, "/trade sell XAUUSD 0.1")
    portfolio = await press(harness, await harness.send("/analytics"), "💼 Portfolio")
    cancelled = await press(harness, await press(harness, portfolio, "✖️ Close #"), "✖️ Cancel")
    assert "XAUUSD SELL 0.1" in shown(cancelled).text
    assert len(await positions(harness)) == 1


async def test_delete_alert_with_confirmation_and_pages(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "pro")
    for level in range(7):
        await harness.send(f"/alerts add EURUSD > 1.{50 + level}")
    alerts = await press(harness, await harness.send("/analytics"), "🔔 Alerts")
    rows = [t for t in labels(alerts) if t.startswith("🗑 #")]
    assert len(rows) == 5 and "Used 7 of 100" in shown(alerts).text  # five per page, then a pager
    assert any(t.startswith(">") or t == "2" for t in labels(alerts))
    ask = await press(harness, alerts, "🗑 #1 ")
    assert "Delete alert #1: EURUSD rises to 1.50000?" in shown(ask).text
    deleted = await press(harness, ask, "🗑 Delete")
    assert "Alert #1 deleted" in shown(deleted).text and "Used 6 of 100" in shown(deleted).text
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        assert [r.id for r in await uow.trading.alerts(ANN)] == [2, 3, 4, 5, 6, 7]


async def test_free_users_see_what_an_upgrade_unlocks(harness: Harness, clock: ManualClock) -> None:
    main = await harness.send("/analytics")
    assert "🔒 Watchlist" in labels(main) and "👀 Watchlist" not in labels(main)
    assert "come with Pro" in shown(main).text
    locked = await press(harness, main, "🔒 Agents")
    assert "More panels with an upgrade" in shown(locked).text and "/premium" in shown(locked).text


async def test_web_app_button_only_with_a_public_url(stack: Settings, telegram: FakeTelegram) -> None:
    settings = stack.model_copy(update={"web_public_url": "https://bot.example.com/"})
    h = await build_harness(settings, telegram, limiter=Unlimited())
    try:
        await set_tier(h, ANN, "pro")
        main = await h.send("/analytics")
        markup = shown(main).params["reply_markup"]["inline_keyboard"]
        web = [b for row in markup for b in row if "web_app" in b]
        assert web == [{"text": "🌐 Web dashboard", "web_app": {"url": "https://bot.example.com/app/"}}]
        free = await h.send("/analytics", user=BOB)
        assert not any("web_app" in b for row in shown(free).params["reply_markup"]["inline_keyboard"] for b in row)
    finally:
        await h.close()


async def test_start_menu_button_opens_the_dashboard(harness: Harness, clock: ManualClock) -> None:
    start = await harness.send("/start")
    assert "📊 Dashboard" in labels(start)
    opened = await harness.press(MenuCB(target="analytics").pack(), message_id=100)
    assert "Dashboard</b> · demo account" in shown(opened).text


async def test_stale_and_foreign_buttons_get_a_friendly_reply(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "pro")
    main = await harness.send("/analytics")
    portfolio = button(main, "💼 Portfolio")
    foreign = await harness.press(portfolio, user=BOB, message_id=100)
    assert [c.method for c in foreign] == ["answerCallbackQuery"] and "expired" in foreign[0].text
    forged = await harness.press("zzzzzz\x1dportfolio", message_id=100)
    assert "expired" in forged[0].text
    closed = await press(harness, main, "✖️ Close")
    assert "Dashboard closed" in shown(closed).text
    after = await harness.press(portfolio, message_id=100)
    assert [c.method for c in after] == ["answerCallbackQuery"] and "/analytics" in after[0].text


async def test_buttons_after_a_restart(stack: Settings, telegram: FakeTelegram) -> None:
    first = await build_harness(stack, telegram, limiter=Unlimited())
    try:
        main = await first.send("/analytics")
    finally:
        await first.close()
    second = await build_harness(stack, telegram, limiter=Unlimited())
    try:
        calls = await second.press(button(main, "🔔 Alerts"), message_id=100)
        if second.app.redis is None:  # in-memory dialog stacks died with the process: a friendly reply
            assert [c.method for c in calls] == ["answerCallbackQuery"] and "expired" in calls[0].text
        else:  # stacks kept in Redis survive a restart (and other replicas): the button still works
            assert "Alerts</b>" in shown(calls).text
    finally:
        await second.close()


async def _edits(harness: Harness, before: int) -> list[Call]:
    for _ in range(200):  # the background manager feeds the update in a task of its own
        edits = [c for c in harness.telegram.calls[before:] if c.method == "editMessageText"]
        if edits:
            return edits
        await asyncio.sleep(0.01)
    return []


async def test_worker_refreshes_an_open_dashboard_when_a_position_closes(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "pro")
    await trade(harness, "/trade buy EURUSD 1")
    portfolio = await press(harness, await harness.send("/analytics"), "💼 Portfolio")
    assert "EURUSD BUY 1" in shown(portfolio).text
    refresher = harness.app.dashboards
    assert refresher.watched == [ANN]
    assert await refresher.check(harness.bot) == 0  # the first round only takes the fingerprint
    assert await refresher.check(harness.bot) == 0  # nothing changed: nothing is edited
    await trade(harness, "/close all")
    before = len(harness.telegram.calls)
    assert await refresher.check(harness.bot) == 1
    edits = await _edits(harness, before)
    assert edits and "No open positions" in edits[-1].text and edits[-1].params["message_id"] == "100"
    stored = await harness.stored_user(ANN)
    assert stored is not None and stored.first_name == "Ann"  # the refresh's stub user changed nothing


async def test_dashboard_in_russian_and_spanish(harness: Harness, clock: ManualClock) -> None:
    ru = await harness.send("/analytics", lang="ru")
    assert "Панель" in shown(ru).text and "💼 Портфель" in labels(ru)
    es = await harness.send("/analytics", user=BOB, lang="es")
    assert "Panel" in shown(es).text and "💼 Cartera" in labels(es)
    settings = await harness.press(button(es, "⚙️"), user=BOB, lang="es", message_id=100)
    assert "Zona horaria" in shown(settings).text


async def test_commands_and_their_buttons_work_beside_an_open_dashboard(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "pro")
    await press(harness, await harness.send("/analytics"), "💼 Portfolio")
    balance = await harness.send("/balance")
    assert "Balance</b>" in balance[0].text and not any(c.method == "editMessageReplyMarkup" for c in balance)
    await trade(harness, "/trade buy EURUSD 0.5")  # its Confirm button is not swallowed by the dialog
    assert len(await positions(harness)) == 1


async def test_worker_refreshes_the_alerts_window_when_an_alert_fires(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "pro")
    await harness.send("/alerts add EURUSD > 1.5")
    await harness.send("/alerts add EURUSD < 1.0")
    alerts = await press(harness, await harness.send("/analytics"), "🔔 Alerts")
    assert "#1 EURUSD rises to 1.50000" in shown(alerts).text
    refresher = harness.app.dashboards
    await refresher.check(harness.bot)  # the fingerprint
    # the evaluator records a one-shot alert's firing: it leaves the live list
    assert await SqlAlertStore(harness.app.sessionmaker).mark_triggered(1, 1_794_996_000_000, 1.5, True)
    before = len(harness.telegram.calls)
    assert await refresher.check(harness.bot) == 1
    edits = await _edits(harness, before)
    assert edits and "#1 EURUSD" not in edits[-1].text and "#2 EURUSD falls to 1.00000" in edits[-1].text
