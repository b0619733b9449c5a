"""Every dashboard button is checked on the server: forged aiogram-dialog callback data for a hidden window or
an action the user may not take is refused with a localized answer and changes nothing; the consensus panels
count against the AI quota like /ai."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.views import compliance as compliance_views
from domain import compliance
from domain.compliance import Document
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from domain.metering import UsageKind
from domain.tiers import Quota
from tests.bot.market.test_analytics import ANN, set_tier, trade
from tests.bot.market.test_dashboard import _edits, button, positions, shown
from tests.fakes.telegram import Call
from tests.harness import Harness

SEP = "\x1d"  # aiogram-dialog's separator between the intent id and the widget's data


def intent(calls: list[Call]) -> str:
    """The dashboard's intent id, as any of its buttons carries it."""
    data = next(d for _, d in shown(calls).buttons if d and SEP in d)
    return data.split(SEP, 1)[0]


async def ai_used(harness: Harness, user: int = ANN) -> int:
    since = datetime(2000, 1, 1, tzinfo=UTC)
    return await harness.app.meter.used(user, UsageKind.FEATURE, Quota.AI_PER_DAY, since)


async def watch(harness: Harness, symbol: str, user: int = ANN) -> None:
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        stored = await uow.users.get(user)
        assert stored is not None
        await harness.app.agents.subscribe(uow, stored, harness.app.tiers.get("pro"), symbol)


def refused(calls: list[Call]) -> tuple[str, list[Call]]:
    """The alert a refused press answers with; nothing of the dashboard is edited."""
    assert not any(c.method.startswith("edit") for c in calls), [c.method for c in calls]
    alert = next(c for c in calls if c.method == "answerCallbackQuery")
    assert alert.params.get("show_alert") in (True, "true")
    return alert.text, [c for c in calls if c.method == "sendMessage"]


@pytest.mark.parametrize(("lang", "words"), [("en", "Inline dashboards needs the Pro plan"),
                                              ("ru", "нужен план Про"), ("es", "requiere el plan Pro")])  # fmt: skip
async def test_free_user_forging_the_hidden_premium_panels_is_refused(
    harness: Harness, clock: ManualClock, lang: str, words: str
) -> None:
    await harness.send("/start", lang=lang)
    await watch(harness, "EURUSD")
    main = await harness.send("/analytics", lang=lang)
    assert not any(d and d.endswith(f"{SEP}watchlist") for _, d in shown(main).buttons)  # hidden by when=
    dialog = intent(main)
    for forged in (f"{dialog}{SEP}watchlist", f"{dialog}{SEP}agents"):
        text, messages = refused(await harness.press(forged, lang=lang, message_id=100))
        assert words in text, text
        assert messages and messages[0].buttons[-1][1] == "plans"  # the way to upgrade
    assert await ai_used(harness) == 0  # no consensus was computed for the Free user
    # the dashboard is where it was: the main window, whose own buttons still work
    portfolio = await harness.press(f"{dialog}{SEP}portfolio", lang=lang, message_id=100)
    assert shown(portfolio).method == "editMessageText" and "💼" in shown(portfolio).text


async def test_pages_and_refreshes_of_a_hidden_panel_are_refused_too(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "pro")
    await watch(harness, "EURUSD")
    main = await harness.send("/analytics")
    watchlist = await harness.press(button(main, "👀 Watchlist"), message_id=100)
    assert "EURUSD" in shown(watchlist).text and await ai_used(harness) == 1
    await set_tier(harness, ANN, "free")  # the plan ended while the panel is open
    dialog = intent(watchlist)
    for forged in ("refresh", "w_next", "w_prev"):
        text, _ = refused(await harness.press(f"{dialog}{SEP}{forged}", message_id=100))
        assert "Inline dashboards needs the Pro plan" in text
    assert await ai_used(harness) == 1
    back = await harness.press(f"{dialog}{SEP}back", message_id=100)  # leaving the panel is always allowed
    assert "Dashboard</b>" in shown(back).text


def new_disclosure(monkeypatch: pytest.MonkeyPatch) -> None:
    """A new version of the risk disclosure is published: everyone must accept it again before trading."""
    monkeypatch.setitem(compliance.CURRENT, Document.RISK, "2027-01")
    monkeypatch.setitem(
        compliance_views.TEXTS, (Document.RISK, "2027-01"), compliance_views.TEXTS[(Document.RISK, "2026-11")]
    )


async def test_dashboard_trading_actions_need_the_current_disclosure(
    harness: Harness, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    await set_tier(harness, ANN, "pro")
    await trade(harness, "/trade buy EURUSD 1")
    await harness.send("/alerts add EURUSD > 1.5")
    ticket = (await positions(harness))[0].ticket
    new_disclosure(monkeypatch)
    main = await harness.send("/analytics")
    dialog = intent(main)
    portfolio = await harness.press(f"{dialog}{SEP}portfolio", message_id=100)
    assert f"{SEP}pos:{ticket}" in button(portfolio, "✖️ Close #")  # the row is shown: viewing is allowed
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        kill_before = (await uow.trading.profile(ANN)).kill_switch
    for forged in (f"pos:{ticket}", "close_yes"):  # closing a position moves money, like /close
        text, messages = refused(await harness.press(f"{dialog}{SEP}{forged}", message_id=100))
        assert "Please read before trading" in text, (forged, text)
        assert messages and messages[0].buttons == [("✅ I accept", "cmp:accept:risk")]
    es = await harness.press(f"{dialog}{SEP}pos:{ticket}", lang="es", message_id=100)
    assert "Lee esto antes de operar" in refused(es)[0]  # answered in the user's language
    assert [p.ticket for p in await positions(harness)] == [ticket]
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        assert (await uow.trading.profile(ANN)).kill_switch == kill_before
    # the kill switch (it stops trading), alerts and the watchlist's analysis move no money: they work before it
    for pressed in ("back", "settings", "kill", "kill", "back", "watchlist", "back", "alerts", "alert:1", "alert_no", "back"):
        calls = await harness.press(f"{dialog}{SEP}{pressed}", message_id=100)
        assert not any("Please read before trading" in c.text for c in calls), (pressed, [c.text for c in calls])
        assert any(c.method == "editMessageText" for c in calls), pressed
        if pressed == "kill":
            async with UnitOfWork(harness.app.sessionmaker) as uow:
                switched = (await uow.trading.profile(ANN)).kill_switch
            assert switched != kill_before  # the first press switched it on, the second off again
            kill_before = switched
    await harness.press("cmp:accept:risk")  # accepting the new version unlocks the same buttons
    await harness.press(f"{dialog}{SEP}portfolio", message_id=100)
    ask = await harness.press(f"{dialog}{SEP}pos:{ticket}", message_id=100)
    assert "Close positions?" in shown(ask).text


async def test_consensus_panels_count_against_the_ai_quota(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "pro")
    await watch(harness, "EURUSD")
    limit = harness.app.tiers.get("pro").quota(Quota.AI_PER_DAY)
    main = await harness.send("/analytics")
    watchlist = await harness.press(button(main, "👀 Watchlist"), message_id=100)
    refreshed = await harness.press(button(watchlist, "🔄 Refresh"), message_id=100)
    agents = await harness.press(button(await harness.press(button(refreshed, "⬅️ Back"), message_id=100),
                                        "🤖 Agents"), message_id=100)  # fmt: skip
    assert "EURUSD H1" in shown(agents).text
    assert await ai_used(harness) == 3  # open, refresh, the agents panel: one analysis each
    for _ in range(limit - 3):
        await harness.app.agents.quotas.claim_ai(ANN, limit)
    spent = await harness.press(button(agents, "🔄 Refresh"), message_id=100)
    assert f"You've used all {limit} AI analyses for today" in shown(spent).text
    assert "renews at 00:00" in shown(spent).text and "weight" not in shown(spent).text
    assert await ai_used(harness) == limit


async def test_malformed_dialog_data_gets_a_clear_answer_and_changes_nothing(
    harness: Harness, clock: ManualClock
) -> None:
    await set_tier(harness, ANN, "pro")
    await trade(harness, "/trade buy EURUSD 1")
    await harness.send("/alerts add EURUSD > 1.5")
    main = await harness.send("/analytics")
    dialog = intent(main)
    for window, junk in (("portfolio", ["pos:²", "pos:99999999999999999999", "pos:-1", "pos:", "pos_pages:x",
                                         "pos_pages:²", "pos_pages:9999999999"]),
                         ("alerts", ["alert:²", "alert:99999999999999999999", "alert_pages:<b>"])):  # fmt: skip
        await harness.press(f"{dialog}{SEP}back", message_id=100)
        opened = await harness.press(f"{dialog}{SEP}{window}", message_id=100)
        assert shown(opened).method == "editMessageText" and ("Alerts" in shown(opened).text) == (window == "alerts")
        for data in junk:
            calls = await harness.press(f"{dialog}{SEP}{data}", message_id=100)
            texts = " ".join(c.text for c in calls)
            assert "BUG-" not in texts and "Something went wrong" not in texts, (data, texts)
            assert "99999999999999999999" not in texts, data  # never echoed back
            assert not any("Close positions?" in c.text or "Delete alert" in c.text for c in calls), data
    ru = await harness.press(f"{dialog}{SEP}alert_pages:x", lang="ru", message_id=100)
    assert "/analytics" in refused(ru)[0] and "out of date" not in refused(ru)[0]
    assert len(await positions(harness)) == 1
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        assert [r.id for r in await uow.trading.alerts(ANN)] == [1]


async def test_a_workers_re_render_of_a_consensus_panel_costs_nothing(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "pro")
    await watch(harness, "EURUSD")
    watchlist = await harness.press(button(await harness.send("/analytics"), "👀 Watchlist"), message_id=100)
    assert await ai_used(harness) == 1
    refresher = harness.app.dashboards
    await refresher.check(harness.bot)  # the fingerprint
    await trade(harness, "/trade buy EURUSD 1")  # a position opens: the open dashboard is re-rendered
    before = len(harness.telegram.calls)
    assert await refresher.check(harness.bot) == 1
    edits = await _edits(harness, before)
    assert edits and edits[-1].text == shown(watchlist).text  # the panel as the user last had it rendered
    assert await ai_used(harness) == 1
