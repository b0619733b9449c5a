"""/price, /chart, /alerts as a user meets them; alerts fire once, also across a restart."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from domain.db.models import AlertRow, AuditRow
from domain.market.clock import ManualClock
from tests.harness import Harness, build_harness


async def test_price_several_symbols_and_suggestions(harness: Harness, clock: ManualClock) -> None:
    calls = await harness.send("/price EURUSD xauusd EURSUD")
    texts = [c.text for c in calls]
    assert len(calls) == 1 and "Not understood: EURSUD (did you mean EURUSD" in texts[0]  # one answer for all
    quote = next(c for c in calls if "Bid" in c.text)
    assert "EURUSD" in quote.text and "XAUUSD" in quote.text and "Spread" in quote.text and "Range" in quote.text
    assert ("📈 Chart EURUSD", "ch:EURUSD:H1") in quote.buttons


@pytest.mark.parametrize(("lang", "word"), [("ru", "Спред"), ("es", "Diferencial")])
async def test_price_localized(harness: Harness, clock: ManualClock, lang: str, word: str) -> None:
    calls = await harness.send("/price EURUSD", lang=lang)
    assert word in calls[-1].text


async def test_chart_is_a_png_with_alert_levels_and_cached(harness: Harness, clock: ManualClock) -> None:
    await harness.send("/alerts add EURUSD > 1.5")
    calls = await harness.send("/chart eurusd H4")
    photo = next(c for c in calls if c.method == "sendPhoto")
    files = [v for v in photo.params.values() if isinstance(v, dict) and "size" in v]
    assert files and files[0]["size"] > 5000
    assert "EURUSD · H4" in photo.params["caption"] and "1 dashed line: your alert level" in photo.params["caption"]
    again = await harness.press("ch:EURUSD:H4")
    assert any(c.method == "sendPhoto" for c in again)
    bad = await harness.send("/chart EURUSD Y9")
    assert "timeframe" in bad[0].text


async def test_alerts_add_list_pause_delete_and_quota(harness: Harness, clock: ManualClock) -> None:
    added = (await harness.send("/alerts add EURUSD > 1.5"))[0]
    assert "Alert #" in added.text and "2 of 3 alerts left" in added.text
    await harness.send("/alerts add EURUSD cross 1.2")
    await harness.send("/alerts add XAUUSD move 1% 60m")
    over = await harness.send("/alerts add EURUSD < 0.5")
    assert "You've used all 3" in over[0].text
    listing = (await harness.send("/alerts"))[0]
    assert "0 left" in listing.text and "moves 1% within 60 min" in listing.text
    first_id = int(added.text.split("#")[1].split()[0])
    paused = await harness.press(f"al:pause:{first_id}")
    assert "⏸" in next(c for c in paused if c.method == "editMessageText").text
    # another user cannot delete it
    other = await harness.press(f"al:del:{first_id}", user=2002)
    assert "not found" in other[-1].text
    await harness.press(f"al:del:{first_id}")
    async with harness.app.sessionmaker() as s:
        assert (await s.get(AlertRow, first_id)) is None
        refused = (await s.execute(select(AuditRow).where(AuditRow.action == "alert.refused"))).scalars().all()
        assert refused


async def test_bad_alert_syntax(harness: Harness, clock: ManualClock) -> None:
    calls = await harness.send("/alerts add EURUSD ?? 1.1", lang="es")
    assert "ALR-SYNTAX" in calls[0].text


async def test_alert_fires_exactly_once_also_across_restart(harness: Harness, clock: ManualClock) -> None:
    hub = harness.app.market.hub
    price = (await hub.tick("EURUSD")).bid
    level = round(price + 0.0004, 5)
    await harness.send(f"/alerts add EURUSD > {level}")
    await harness.send(f"/alerts add EURUSD > {round(price + 5, 5)}")  # never reached
    runtime = harness.app.market
    runtime.attach(harness.bot, harness.app.i18n)
    fired_texts: list[str] = []
    for _ in range(2000):
        clock.advance(5)
        await runtime.feed.poll_once()
        await runtime.evaluator.flush(runtime.delivery.notify)  # type: ignore[union-attr]
        fired_texts = [c.text for c in harness.telegram.sent() if "Alert #" in c.text and "Price" in c.text]
        if fired_texts:
            break
    assert len(fired_texts) == 1 and "📈 Chart" in str(harness.telegram.sent()[-1].buttons)
    # restart: a new app on the same database must not fire it again
    settings = harness.app.settings
    await harness.app.market.close()
    app2 = await build_harness(settings, harness.telegram)
    try:
        app2.app.market.hub.use_clock(clock)
        rt2 = app2.app.market
        rt2.attach(app2.bot, app2.app.i18n)
        assert len(rt2.evaluator.index) == 1  # only the unreached one is live
        for _ in range(50):
            clock.advance(5)
            await rt2.feed.poll_once()
            await rt2.evaluator.flush(rt2.delivery.notify)  # type: ignore[union-attr]
        again = [c.text for c in harness.telegram.sent() if "Alert #" in c.text and "Price" in c.text]
        assert len(again) == 1
    finally:
        await app2.close()


async def test_fired_alert_respects_the_notification_switch(harness: Harness, clock: ManualClock) -> None:
    price = (await harness.app.market.hub.tick("EURUSD")).bid
    await harness.send(f"/alerts add EURUSD < {round(price + 0.01, 5)}")  # holds at once
    await harness.press("cfg:notify:alerts")  # price alerts off
    runtime = harness.app.market
    delivery = runtime.attach(harness.bot, harness.app.i18n)
    clock.advance(5)
    await runtime.feed.poll_once()
    await runtime.evaluator.flush(delivery.notify)
    assert delivery.skipped == 1 and delivery.sent == 0
    assert not [c for c in harness.telegram.sent() if "Price" in c.text and "Alert #" in c.text]
    async with harness.app.sessionmaker() as s:
        row = (await s.execute(select(AlertRow))).scalar_one()
    assert row.status == "triggered"  # persisted even though the user muted the message


async def test_inline_alert_flow_in_russian(harness: Harness, clock: ManualClock) -> None:
    listing = (await harness.send("/alerts", lang="ru"))[0]
    assert "Ценовые оповещения" in listing.text and ("➕ Новое оповещение", "al:new:0") in listing.buttons
    prompt = await harness.press("al:new:0", lang="ru")
    assert "Отправьте оповещение" in prompt[-1].text
    typo = await harness.send("EURUSD ?? 1.2", lang="ru")
    assert "ALR-SYNTAX" in typo[0].text
    added = await harness.send("EURUSD > 1.9", lang="ru")
    assert "Оповещение #" in added[0].text and "1.90000" in added[0].text
    assert "EURUSD" in (await harness.send("/alerts"))[0].text
