"""The Mini App's charts (lightweight-charts), the agents page's consensus history, the simulated mark and
accessibility, in Debian's Chromium against the real aiohttp server (the set-up is test_web.py's).

* The chart zooms (wheel, buttons, keys) and pans (drag): the visible logical range changes; the crosshair
  label shows the hovered bar's open, high, low and close as the API serves them.
* The agents page shows each agent's vote at each bar the agent runner processed, and the weights it carried.
* axe-core (vendored under tests/web/vendor, injected from the page's own origin so the CSP stays on) finds no
  serious or critical violation on any page, in Telegram's light and dark themes; screenshots of each go to
  ``$SCREENSHOT_DIR``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import func, select

from domain.db.models import AgentVoteRow
from domain.db.uow import UnitOfWork
from domain.market.models import Side, Tick
from tests.integration import test_web
from tests.integration.test_web import ANN, BOB, Site, _history, _page, _until_watching, screenshot_dir

pytestmark = pytest.mark.integration
site, browser = test_web.site, test_web.browser  # the same fixtures: a real app on a port, Debian's Chromium

AXE = Path(__file__).resolve().parents[1] / "web" / "vendor" / "axe.min.js"
# the theme parameters Telegram's clients send (light: its hint colour is below AA on white as given)
THEMES = {
    "light": {"bg_color": "#ffffff", "text_color": "#000000", "hint_color": "#999999", "link_color": "#2481cc",
              "button_color": "#2481cc", "button_text_color": "#ffffff", "secondary_bg_color": "#efeff3"},
    "dark": {"bg_color": "#212121", "text_color": "#ffffff", "hint_color": "#aaaaaa", "link_color": "#8774e1",
             "button_color": "#8774e1", "button_text_color": "#ffffff", "secondary_bg_color": "#181818"},
}  # fmt: skip


def themed_url(site: Site, path: str, user_id: int, theme: str) -> str:
    return (f"{site.url}{path}#tgWebAppData={quote(site.init_data(user_id), safe='')}"
            f"&tgWebAppVersion=8.0&tgWebAppThemeParams={quote(json.dumps(THEMES[theme]), safe='')}")  # fmt: skip


async def _agent_bars(site: Site, bars: int) -> None:
    """The real agent runner over ``bars`` closed H1 bars (the clock moves one hour between passes)."""
    for _ in range(bars):
        site.clock.advance(3600)
        await site.app.agent_runner.run_once()


async def _scene(site: Site, user_id: int) -> None:
    """A Pro user with trades, an open position, an alert level and a day of agent votes on EURUSD."""
    await site.user(user_id)
    await _agent_bars(site, 12)
    await _history(site, user_id)
    await site.trade(user_id, Side.BUY, "EURUSD", 0.3)
    async with UnitOfWork(site.app.sessionmaker) as uow:
        await site.app.market.alerts.add(uow, user_id, site.app.tiers.get("pro"), "EURUSD > 1.19")
    await _agent_bars(site, 12)


async def _range(page: Any) -> tuple[float, float]:
    r = await page.evaluate("() => HTApp.state.charts.candles.timeScale().getVisibleLogicalRange()")
    return float(r["from"]), float(r["to"])


async def _wait_range_change(page: Any, before: tuple[float, float]) -> tuple[float, float]:
    await page.wait_for_function(
        "([f, t]) => { const r = HTApp.state.charts.candles.timeScale().getVisibleLogicalRange();"
        " return r && (Math.abs(r.from - f) > 0.5 || Math.abs(r.to - t) > 0.5); }", arg=list(before))  # fmt: skip
    return await _range(page)


async def test_chart_zooms_pans_and_the_crosshair_shows_the_bars_ohlc(site: Site, browser: Any) -> None:
    await _scene(site, ANN)
    status, data = await site.get("/api/chart?symbol=EURUSD&tf=H1", "tma " + site.init_data(ANN))
    assert status == 200 and data["simulated"] is True
    assert len(data["bars"]["v"]) == len(data["bars"]["t"]) and any(data["bars"]["v"])  # volume for every bar
    assert data["levels"] == [1.19] and len(data["trades"]) == 3 and data["signals"]

    page = await _page(browser, width=800, height=800)
    await page.goto(themed_url(site, "/app/chart?symbol=EURUSD&tf=H1", ANN, "light"))
    await page.wait_for_selector("body[data-ready=chart]")
    assert int(await page.get_attribute("#candles", "data-drawn")) == len(data["bars"]["t"])  # type: ignore[arg-type]
    assert int(await page.get_attribute("#candles", "data-markers")) >= 3  # type: ignore[arg-type]  # trades, signals
    assert await page.text_content("#sim-mark") == "Simulated prices"
    box = await page.locator("#candles").bounding_box()
    assert box is not None
    cx, cy = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.4

    # the wheel zooms in: fewer bars in view
    start = await _range(page)
    await page.mouse.move(cx, cy)
    await page.mouse.wheel(0, -400)
    zoomed = await _wait_range_change(page, start)
    assert zoomed[1] - zoomed[0] < start[1] - start[0]
    # a drag pans: the same width, further back in time
    await page.mouse.move(cx, cy)
    await page.mouse.down()
    await page.mouse.move(cx + 200, cy, steps=8)
    await page.mouse.up()
    panned = await _wait_range_change(page, zoomed)
    assert panned[0] < zoomed[0] and panned[1] - panned[0] == pytest.approx(zoomed[1] - zoomed[0], abs=1)
    # the buttons and the keyboard do the same without a pointer
    await page.click("#zoom-reset")
    reset = await _wait_range_change(page, panned)
    await page.focus("#candles")
    await page.keyboard.press("+")
    keyed = await _wait_range_change(page, reset)
    assert keyed[1] - keyed[0] < reset[1] - reset[0]
    await page.keyboard.press("0")
    await _wait_range_change(page, keyed)

    # the crosshair over a bar: its open, high, low and close as served by /api/chart
    await page.mouse.move(cx - 120, cy)
    await page.wait_for_selector("#ohlc[data-hover='1']")
    shown = int(await page.get_attribute("#ohlc", "data-time"))  # type: ignore[arg-type]
    bars = data["bars"]
    i = bars["t"].index(shown)
    label = await page.text_content("#ohlc")
    for key, word in (("o", "Opening"), ("h", "High"), ("l", "Low"), ("c", "Closing")):
        assert f"{word} {bars[key][i]:.5f}" in label  # type: ignore[operator]
    # another bar, other values
    await page.mouse.move(cx + 150, cy)
    await page.wait_for_function("(t) => document.querySelector('#ohlc').dataset.time !== String(t)", arg=shown)
    other = int(await page.get_attribute("#ohlc", "data-time"))  # type: ignore[arg-type]
    assert other > shown
    # pointer away: the label returns to the latest bar, and a tick moves it
    await page.mouse.move(5, 5)
    await page.wait_for_function("(t) => document.querySelector('#ohlc').dataset.time === String(t)", arg=bars["t"][-1])
    await _until_watching(site, "EURUSD")
    site.app.market.feed.bus.publish(Tick("EURUSD", site.clock() + 1000, 1.23456, 1.23466))
    await page.wait_for_function("() => document.querySelector('#ohlc').textContent.includes('1.23456')")
    assert page.errors == []  # type: ignore[attr-defined]


async def test_the_simulated_mark_follows_the_market_data_backend(site: Site, browser: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    await site.user(ANN)
    auth = "tma " + site.init_data(ANN)
    assert site.app.market.hub.backend == "sim" and site.mini.simulated() is True
    for path in ("/api/me", "/api/dashboard", "/api/chart?symbol=EURUSD", "/api/agents?symbol=EURUSD"):
        assert (await site.get(path, auth))[1]["simulated"] is True, path
    monkeypatch.setattr(site.app.market.hub, "backend", "rpyc")  # a real terminal behind the market data
    assert site.mini.simulated() is False
    monkeypatch.setattr(site.app.market.hub, "backend", "sim")
    # the page shows the mark only when the JSON says so
    monkeypatch.setattr(site.mini, "simulated", lambda: False)
    assert (await site.get("/api/chart?symbol=EURUSD", auth))[1]["simulated"] is False
    page = await _page(browser)
    await page.goto(themed_url(site, "/app/chart?symbol=EURUSD&tf=H1", ANN, "light"))
    await page.wait_for_selector("body[data-ready=chart]")
    assert await page.locator("#sim-mark").count() == 0


async def test_agents_page_shows_each_agents_vote_per_bar_and_the_weights(site: Site, browser: Any) -> None:
    await site.user(ANN, lang="es")
    await _agent_bars(site, 10)
    async with UnitOfWork(site.app.sessionmaker) as uow:
        stored = await uow.session.scalar(
            select(func.count()).select_from(AgentVoteRow).where(AgentVoteRow.symbol == "EURUSD")
        )
    names = sorted(site.app.agents.visible_agents(site.app.tiers.get("pro")))
    assert stored is not None and stored >= 10 * (len(names) + 1)  # every agent and the consensus, every bar
    status, body = await site.get("/api/agents?symbol=EURUSD&tf=H1", "tma " + site.init_data(ANN))
    assert status == 200
    ch = body["consensus_history"]
    assert len(ch["t"]) == 10 and ch["t"] == sorted(ch["t"]) and ch["t"][-1] - ch["t"][0] == 9 * 3600
    assert set(ch["agents"]) == set(names)
    for row in ch["agents"].values():
        assert set(row["d"]) <= {-1, 0, 1} and len(row["w"]) == 10 and all(w is not None for w in row["w"])
    assert set(ch["consensus"]["d"]) <= {-1, 0, 1} and len(ch["consensus"]["d"]) == 10
    # the last bar's votes are the latest votes the page lists beside it
    latest = {v["agent"]: v["direction"] for v in body["votes"]}
    as_number = {"buy": 1, "sell": -1, "flat": 0}
    assert {n: ch["agents"][n]["d"][-1] for n in latest} == {n: as_number[d] for n, d in latest.items()}

    page = await _page(browser)
    await page.goto(themed_url(site, "/app/agents?symbol=EURUSD&tf=H1", ANN, "dark"))
    await page.wait_for_selector("body[data-ready=agents]")
    assert await page.locator("#vote-history tr").count() == len(names) + 2  # times, consensus, one row per agent
    assert await page.locator("#vote-history tr.consensus td").count() == 10
    first_agent = await page.text_content("#vote-history tr:nth-child(3) th")
    cells = await page.locator("#vote-history tr:nth-child(3) td .sr").all_text_contents()
    words = {1: "compra", -1: "venta", 0: "neutral"}
    assert cells == [words.get(d, "—") for d in ch["agents"][first_agent]["d"]]  # type: ignore[index]
    assert int(await page.get_attribute("#bar-weights", "data-drawn")) == 10 * len(names)  # type: ignore[arg-type]
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_user_sees_only_their_own_trades_and_alerts_on_the_chart(site: Site) -> None:
    await _scene(site, ANN)
    await site.user(BOB)
    bob = (await site.get("/api/chart?symbol=EURUSD&tf=H1", "tma " + site.init_data(BOB)))[1]
    assert bob["trades"] == [] and bob["levels"] == [] and bob["positions"] == []
    ann = (await site.get(f"/api/chart?symbol=EURUSD&tf=H1&user_id={BOB}", "tma " + site.init_data(ANN)))[1]
    assert ann["levels"] == [1.19] and len(ann["trades"]) == 3  # an id in the query changes nothing


async def _axe(page: Any, base: str) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations on the page (axe served from the page's origin: the CSP holds)."""
    source = AXE.read_text()
    await page.route(base + "/__axe__.js", lambda route: route.fulfill(body=source, content_type="application/javascript"))
    await page.add_script_tag(url=base + "/__axe__.js")
    result = await page.evaluate("() => axe.run(document, { resultTypes: ['violations'] })")
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [(n["target"], n["failureSummary"]) for n in v["nodes"]][:5]}
        for v in result["violations"] if v["impact"] in ("serious", "critical")
    ]  # fmt: skip


@pytest.mark.parametrize("theme", ["light", "dark"])
async def test_every_page_passes_axe_and_is_screenshotted(site: Site, browser: Any, theme: str) -> None:
    await _scene(site, ANN)
    shots = screenshot_dir()
    for name, path in (("dashboard", "/app/"), ("chart", "/app/chart?symbol=EURUSD&tf=H1"),
                       ("agents", "/app/agents?symbol=EURUSD&tf=H1")):  # fmt: skip
        page = await _page(browser, scheme=theme)
        await page.goto(themed_url(site, path, ANN, theme))
        await page.wait_for_selector(f"body[data-ready={name}]")
        assert await page.locator("#sim-mark").count() == 1, name
        assert await _axe(page, site.url) == [], (name, theme)
        # every text colour reaches 4.5:1 on both backgrounds after the theme is applied
        worst = await page.evaluate("""() => { const cs = getComputedStyle(document.documentElement), c = (n) => HTApp.rgb(cs.getPropertyValue(n));
            let w = 99; for (const f of ['--text', '--hint', '--up', '--down']) for (const b of ['--bg', '--card'])
              w = Math.min(w, HTApp.contrast(c(f), c(b))); return Math.min(w, HTApp.contrast(c('--accent'), c('--on-accent'))); }""")  # fmt: skip
        assert worst >= 4.5, (name, theme, worst)
        # keyboard: Tab reaches the navigation first, with a visible focus outline
        await page.keyboard.press("Tab")
        outline = await page.evaluate("() => [document.activeElement.tagName, getComputedStyle(document.activeElement).outlineStyle]")
        assert outline == ["A", "solid"], (name, theme)
        assert page.errors == []  # type: ignore[attr-defined]
        shot = shots / f"webapp-{name}-{theme}.png"
        await page.screenshot(path=str(shot), full_page=True)
        print(f"screenshot: {shot}")
        await page.context.close()
