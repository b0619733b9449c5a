"""The Mini App in headless Chromium against the real aiohttp server: it renders the user's data, refuses
forged or expired credentials, never shows one user another's data, and updates the chart from a tick.

Chromium is Debian's (/usr/bin/chromium) driven by the ``playwright`` package (no browser download). Locally a
missing browser skips these tests with the reason; with CI=true it fails them.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import web

from bot.settings import Settings
from bot.web.app import create_web_app
from bot.web.auth import sign_init_data
from bot.web.miniapp import MINIAPP, MiniApp
from domain.db.analytics import EquitySnapshot
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from domain.market.models import Side, Tick
from domain.ratelimit import Decision
from domain.trading.models import AccountKind
from tests.conftest import require
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.harness import Harness, build_harness

pytestmark = pytest.mark.integration

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]  # fmt: skip
START = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday: FX markets open
ANN, BOB, CARL = 1001, 2002, 3003


def chromium_missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} not found (apt-get install chromium)"
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e .[dev])"
    return None


def screenshot_dir() -> Path:
    """``$SCREENSHOT_DIR`` when set, else ``var/screenshots`` in the checkout (git-ignored); kept after the run."""
    path = Path(os.environ.get("SCREENSHOT_DIR") or Path(__file__).resolve().parents[2] / "var" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Unlimited:
    async def hit(self, key: str, rate_per_minute: int, burst: int) -> Decision:
        return Decision(True)


@dataclass
class Site:
    harness: Harness
    clock: ManualClock
    url: str
    mini: MiniApp

    @property
    def app(self) -> Any:
        return self.harness.app

    def init_data(self, user_id: int, *, age: float = 0, lang: str = "en", token: str = TOKEN) -> str:
        user = {"id": user_id, "first_name": "Ann", "language_code": lang}
        return sign_init_data(token, {"auth_date": int(time.time() - age), "query_id": "AAE", "user": user})

    def page_url(self, path: str, user_id: int, **kwargs: Any) -> str:
        theme = json.dumps({"bg_color": "#101820", "text_color": "#f5f5f5", "hint_color": "#8d9aa7",
                            "button_color": "#5eaee8", "secondary_bg_color": "#232e3c"})  # fmt: skip
        return (f"{self.url}{path}#tgWebAppData={quote(self.init_data(user_id, **kwargs), safe='')}"
                f"&tgWebAppVersion=8.0&tgWebAppThemeParams={quote(theme, safe='')}")  # fmt: skip

    async def get(self, path: str, authorization: str | None) -> tuple[int, Any]:
        headers = {"Authorization": authorization} if authorization is not None else {}
        async with aiohttp.ClientSession() as http, http.get(self.url + path, headers=headers) as r:
            return r.status, await r.json()

    async def user(self, user_id: int, *, tier: str = "pro", lang: str = "en") -> None:
        await self.harness.send("/start", user=user_id, lang=lang)
        async with UnitOfWork(self.app.sessionmaker) as uow:
            await uow.users.update(user_id, tier=tier)
            await uow.commit()
        self.app.users.forget(user_id)

    async def trade(self, user_id: int, side: Side, symbol: str, volume: float) -> None:
        trading, tier = self.app.market.trading, self.app.tiers.get("pro")
        async with UnitOfWork(self.app.sessionmaker) as uow:
            preview = await trading.preview_open(uow, user_id, tier, side, symbol, volume, None, None)
            assert (await trading.execute(uow, user_id, tier, preview.order.id)).ok

    async def close(self, user_id: int, target: str) -> None:
        trading, tier = self.app.market.trading, self.app.tiers.get("pro")
        async with UnitOfWork(self.app.sessionmaker) as uow:
            preview = await trading.preview_close(uow, user_id, tier, target, None)
            assert (await trading.execute(uow, user_id, tier, preview.order.id)).ok


@pytest.fixture
async def site(sqlite_url: str, tmp_path: Path, telegram: FakeTelegram) -> AsyncIterator[Site]:
    settings = Settings(database_url=sqlite_url, data_dir=tmp_path, secret_key="test-secret")
    h = await build_harness(settings, telegram, limiter=Unlimited())
    clock = ManualClock(START)
    h.app.market.hub.use_clock(clock)
    web_app = create_web_app(h.app, h.bot)
    runner = web.AppRunner(web_app, access_log=None)
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    port = runner.addresses[0][1]
    try:
        yield Site(h, clock, f"http://127.0.0.1:{port}", web_app[MINIAPP])
    finally:
        await runner.cleanup()
        await h.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    require(chromium_missing())
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


async def _page(browser: Any, *, width: int = 390, height: int = 844, scheme: str = "light") -> Any:
    context = await browser.new_context(
        viewport={"width": width, "height": height}, device_scale_factor=2, color_scheme=scheme
    )
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # console errors include Content-Security-Policy violations (an inline style, a foreign script)
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and "401" not in msg.text else None)
    page.errors = errors  # type: ignore[attr-defined]
    return page


async def _history(site: Site, user_id: int) -> None:
    """Two closed trades (EURUSD, XAUUSD) a few hours apart, and one open position."""
    await site.trade(user_id, Side.BUY, "EURUSD", 0.5)
    site.clock.advance(3 * 3600)
    await site.close(user_id, "EURUSD")
    await site.trade(user_id, Side.SELL, "XAUUSD", 0.1)
    site.clock.advance(5 * 3600)
    await site.close(user_id, "XAUUSD")
    await site.trade(user_id, Side.BUY, "GBPUSD", 0.2)
    site.clock.advance(3600)


async def test_dashboard_renders_the_users_data(site: Site, browser: Any, tmp_path: Path) -> None:
    await site.user(ANN)
    await _history(site, ANN)
    status, expected = await site.get("/api/dashboard?period=all", "tma " + site.init_data(ANN))
    assert status == 200
    assert expected["metrics"]["trades"] == 2
    assert {s["symbol"] for s in expected["by_symbol"]} == {"EURUSD", "XAUUSD"}
    assert [p["symbol"] for p in expected["positions"]] == ["GBPUSD"]

    page = await _page(browser)
    await page.goto(site.page_url("/app/", ANN))
    await page.wait_for_selector("body[data-ready=dashboard]")
    assert await page.text_content("#kpi-trades") == "2"
    net = expected["metrics"]["net"]
    assert (await page.text_content("#kpi-net")).replace(",", "") == f"{net:.2f}"  # type: ignore[union-attr]
    assert (await page.text_content("#kpi-equity")).replace(",", "") == f"{expected['equity_now']:.2f}"  # type: ignore[union-attr]
    assert int(await page.get_attribute("#equity", "data-drawn")) >= 3  # type: ignore[arg-type]
    assert int(await page.get_attribute("#drawdown", "data-drawn")) >= 3  # type: ignore[arg-type]
    assert await page.get_attribute("#by-symbol", "data-drawn") == "2"
    assert await _painted(page, "#equity") > 50  # the canvas really has ink on it
    assert await page.text_content("#positions td") == "GBPUSD"
    assert "#" not in page.url and "tgWebAppData" not in page.url  # the credentials left the address bar
    # Telegram's dark theme reached the page
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(16, 24, 32)"

    # live: a GBPUSD tick revalues the open position in place
    await _until_watching(site, "GBPUSD")
    before = await page.text_content("#positions td.pl")
    position = expected["positions"][0]
    bid = round(position["price_open"] + 0.0100, 5)
    site.app.market.feed.bus.publish(Tick("GBPUSD", site.clock() + 1000, bid, bid + 0.0001))
    await page.wait_for_function(
        "(v) => document.querySelector('#positions td.px').textContent.replace(/,/g, '') === v", arg=f"{bid:.5f}"
    )
    after = await page.text_content("#positions td.pl")
    assert after != before
    assert float(after.replace(",", "")) == pytest.approx(0.0100 * position["per_unit"], abs=0.02)  # type: ignore[union-attr]
    assert page.errors == []  # type: ignore[attr-defined]

    shot = screenshot_dir() / "webapp-dashboard.png"
    await page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000


async def test_chart_page_draws_alerts_and_trades_and_updates_from_a_tick(site: Site, browser: Any, tmp_path: Path) -> None:
    await site.user(ANN, lang="ru")
    await _history(site, ANN)
    async with UnitOfWork(site.app.sessionmaker) as uow:
        await site.app.market.alerts.add(uow, ANN, site.app.tiers.get("pro"), "EURUSD > 1.19")
    # a plain signed link (outside Telegram) opens the same page
    link = site.mini.auth.link(site.url, ANN, "chart") + "&symbol=EURUSD&tf=M5"
    page = await _page(browser, width=800, height=700, scheme="dark")
    await page.goto(link)
    await page.wait_for_selector("body[data-ready=chart]")
    # outside Telegram the system's dark preference picks the colours
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(23, 33, 43)"
    assert "t=" not in page.url and "symbol=EURUSD" in page.url
    assert await page.text_content("#nav a[data-page=chart]") == "График"  # Russian labels from /api/me
    assert int(await page.get_attribute("#candles", "data-drawn")) >= 100  # type: ignore[arg-type]
    legend = await page.text_content(".legend")
    assert "(1)" in legend and "(2)" in legend  # type: ignore[operator]  # one alert level, two EURUSD deals
    await _until_watching(site, "EURUSD")
    site.app.market.feed.bus.publish(Tick("EURUSD", site.clock() + 1000, 1.18456, 1.18466))
    await page.wait_for_function("() => document.querySelector('#last-price').textContent.includes('18456')")
    assert page.errors == []  # type: ignore[attr-defined]
    shot = screenshot_dir() / "webapp-chart.png"
    await page.screenshot(path=str(shot))
    print(f"screenshot: {shot}")


async def test_forged_or_expired_credentials_get_401(site: Site, browser: Any) -> None:
    await site.user(ANN)
    good = site.init_data(ANN)
    assert (await site.get("/api/me", "tma " + good))[0] == 200
    tampered = good.replace(quote(f'"id":{ANN}', safe=""), quote(f'"id":{BOB}', safe=""))
    assert tampered != good
    expired_link = site.mini.auth.issue_link_token(ANN, ttl=-1)
    forged_link = site.mini.auth.issue_link_token(ANN)[:-3] + "AAA"
    for authorization in (
        None, "", "tma", "Bearer " + good, "tma " + tampered, "tma " + site.init_data(ANN, age=2 * 3600),
        "tma " + site.init_data(ANN, token="999:other-bot"), "tma " + good.replace("hash=", "hash=0"),
        "link " + expired_link, "link " + forged_link, "link garbage",
    ):
        for path in ("/api/me", "/api/dashboard", "/api/chart?symbol=EURUSD", "/api/agents"):
            status, body = await site.get(path, authorization)
            assert (status, body["error"]) == (401, "unauthorized"), (path, authorization)

    # the page opened with expired initData says so, and the socket refuses it too
    page = await _page(browser)
    await page.goto(site.page_url("/app/", ANN, age=2 * 3600))
    await page.wait_for_selector("body[data-ready=error]")
    assert "expired" in (await page.text_content("#error"))  # type: ignore[operator]
    async with aiohttp.ClientSession() as http, http.ws_connect(site.url + "/app/ws") as ws:
        await ws.send_json({"auth": "tma " + tampered})
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4401


async def test_a_non_ascii_hash_gets_401_over_http_and_the_socket(site: Site) -> None:
    """hmac.compare_digest raised TypeError on it: a 500 and a stack trace per request, an escaping socket error."""
    await site.user(ANN)
    forged = site.init_data(ANN).rsplit("hash=", 1)[0] + "hash=" + quote("é" * 64)
    for path in ("/api/me", "/api/dashboard"):
        status, body = await site.get(path, "tma " + forged)
        assert (status, body["error"]) == (401, "unauthorized")
    async with aiohttp.ClientSession() as http, http.ws_connect(site.url + "/app/ws") as ws:
        await ws.send_json({"auth": "tma " + forged})
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 4401


async def test_a_failing_socket_check_closes_cleanly(site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise ConnectionError("database connection lost")

    monkeypatch.setattr(site.mini, "viewer", broken)
    async with aiohttp.ClientSession() as http, http.ws_connect(site.url + "/app/ws") as ws:
        await ws.send_json({"auth": "tma " + site.init_data(ANN)})
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 1011


async def test_a_user_never_reads_another_users_data(site: Site) -> None:
    await site.user(ANN)
    await site.user(BOB)
    await _history(site, ANN)
    ann = await site.get("/api/dashboard", "tma " + site.init_data(ANN))
    bob = await site.get("/api/dashboard", "tma " + site.init_data(BOB))
    assert ann[1]["metrics"]["trades"] == 2 and ann[1]["positions"]
    assert bob[0] == 200 and bob[1]["metrics"]["trades"] == 0 and bob[1]["positions"] == []
    assert bob[1]["account"]["login"] != ann[1]["account"]["login"]
    # asking for Ann by id changes nothing: the user comes only from the verified credentials
    for query in (f"?user_id={ANN}", f"?user={ANN}&login={ann[1]['account']['login']}"):
        status, body = await site.get("/api/dashboard" + query, "tma " + site.init_data(BOB))
        assert status == 200 and body["metrics"]["trades"] == 0
    chart = await site.get("/api/chart?symbol=EURUSD&tf=H1", "tma " + site.init_data(BOB))
    assert chart[1]["trades"] == [] and chart[1]["levels"] == []
    assert len((await site.get("/api/chart?symbol=EURUSD&tf=H1", "tma " + site.init_data(ANN)))[1]["trades"]) == 2


async def test_plans_unknown_users_and_bad_input(site: Site) -> None:
    await site.user(CARL, tier="free", lang="es")
    await site.user(ANN)
    status, body = await site.get("/api/me", "tma " + site.init_data(CARL))
    assert (status, body["error"]) == (403, "locked")
    assert "Pro" in body["message"] and "/premium" in body["message"] and "web" in body["message"].lower()
    status, body = await site.get("/api/me", "tma " + site.init_data(4242))  # never started the bot
    assert (status, body["error"]) == (403, "not_a_user")
    auth = "tma " + site.init_data(ANN)
    status, body = await site.get("/api/chart?symbol=NOPE", auth)
    assert (status, body["error"]) == (404, "unknown_symbol")
    status, body = await site.get("/api/chart?symbol=EURUSD&tf=H7", auth)
    assert (status, body["error"], body["field"]) == (400, "invalid", "tf")
    status, body = await site.get("/api/dashboard?period=decade", auth)
    assert (status, body["field"]) == (400, "period")
    status, body = await site.get("/api/agents?symbol=%00%00", auth)
    assert status in (400, 404) and "error" in body
    status, body = await site.get("/api/me", auth)
    assert status == 200 and body["labels"]["nav_dashboard"] == "Dashboard" and "EURUSD" in body["symbols"]
    async with aiohttp.ClientSession() as http:
        async with http.get(site.url + "/app/") as r:
            html = await r.text()
            assert r.status == 200 and "default-src 'self'" in r.headers["Content-Security-Policy"]
        assert "http" not in html.replace("http-equiv", "")  # nothing from another origin
        for name in ("app.js", "app.css", "vendor/lightweight-charts.standalone.production.js"):
            async with http.get(f"{site.url}/app/static/{name}") as r:
                assert r.status == 200 and "//cdn" not in await r.text()
        async with http.get(f"{site.url}/app/static/chart.js") as r:
            assert r.status == 404  # the hand-drawn charts are gone: lightweight-charts draws every chart


async def test_websocket_watch_and_slot_backpressure(site: Site) -> None:
    await site.user(ANN)
    async with aiohttp.ClientSession() as http, http.ws_connect(site.url + "/app/ws") as ws:
        await ws.send_json({"auth": "tma " + site.init_data(ANN)})
        assert (await ws.receive_json())["type"] == "ready"
        await ws.send_json({"watch": ["eurusd", "NOPE"]})
        watching = await ws.receive_json()
        assert watching == {"type": "watching", "symbols": ["EURUSD"], "unknown": ["NOPE"]}
        bus = site.app.market.feed.bus
        # a burst while the client reads nothing: the connection keeps only the latest EURUSD tick
        for i in range(1000):
            bus.publish(Tick("EURUSD", 1_800_000_000_000 + i, 1.1 + i * 1e-5, 1.1001 + i * 1e-5))
            bus.publish(Tick("USDJPY", 1_800_000_000_000 + i, 150.0, 150.01))  # not watched
        msg = await ws.receive_json()
        last = msg["ticks"][-1]
        while last["t"] < 1_800_000_000_999:
            msg = await ws.receive_json()
            last = msg["ticks"][-1]
        assert {t["s"] for t in msg["ticks"]} == {"EURUSD"}
        conn = next(iter(site.mini.live._watchers["EURUSD"]))
        assert conn.sent < 1000 and conn.skipped > 0 and conn.sent + conn.skipped == 1000
    await asyncio.sleep(0.05)
    assert site.mini.live.symbols == []  # closing the page stops following


async def _until_watching(site: Site, symbol: str) -> None:
    live = site.mini.live
    for _ in range(200):
        if symbol in live.symbols:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"the page never watched {symbol}")


async def _painted(page: Any, selector: str) -> int:
    """How many distinct colours the canvases of a chart hold together (an empty chart has one or two)."""
    return int(await page.evaluate(
        """(sel) => { const seen = new Set();
           for (const c of document.querySelectorAll(sel + ' canvas')) {
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             for (let i = 0; i < d.length; i += 16) seen.add(d[i] << 16 | d[i+1] << 8 | d[i+2] | d[i+3] << 24); }
           return seen.size; }""", selector))  # fmt: skip


async def test_agents_page_shows_votes_weights_over_time_and_signals(site: Site, browser: Any) -> None:
    from domain.agents.consensus import AgentStats

    await site.user(ANN, lang="es")
    names = site.app.agents.visible_agents(site.app.tiers.get("pro"))
    t0 = int(START.timestamp()) - 48 * 3600
    async with UnitOfWork(site.app.sessionmaker) as uow:
        for step in range(6):  # six resolved signals move each agent's weight
            for i, name in enumerate(names[:3]):
                hits = step + (i == 0) * step
                await uow.agents.put(AgentStats(name, "EURUSD", "H1", 1 + hits, 1 + step * 2 - hits, hits,
                                                step * 2 - hits, t0 + step * 3600))  # fmt: skip
        await uow.agents.add_signal("consensus", "EURUSD", "H1", "buy", t0, 1.1, 0.001, 12, 0.61)
        await uow.agents.add_signal(names[0], "EURUSD", "H1", "sell", t0 + 3600, 1.1, 0.001, 12, 0.55)
        await uow.commit()
    status, body = await site.get("/api/agents?symbol=EURUSD&tf=H1", "tma " + site.init_data(ANN))
    assert status == 200 and len(body["history"]["t"]) == 6
    assert set(body["history"]["agents"]) == set(names[:3])
    first = body["history"]["agents"][names[0]]
    assert first[-1] > first[0]  # the agent that kept hitting gained weight
    assert {v["agent"] for v in body["votes"]} <= set(names) and body["votes"]
    assert [s["agent"] for s in body["signals"]] == [names[0], "consensus"]

    page = await _page(browser)
    # inside Telegram's app the page tells the client it is ready (Telegram's web-events protocol, no SDK)
    await page.add_init_script("window.sent = []; window.TelegramWebviewProxy = {postEvent: (t) => window.sent.push(t)};")
    await page.goto(site.page_url("/app/agents?symbol=EURUSD&tf=H1", ANN, lang="es"))
    await page.wait_for_selector("body[data-ready=agents]")
    assert await page.evaluate("() => window.sent") == ["web_app_ready", "web_app_expand"]
    assert await page.text_content("#nav a[data-page=agents]") == "Agentes"
    assert await page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(16, 24, 32)"
    assert await page.locator("#votes tr").count() == len(body["votes"]) + 1
    assert await page.get_attribute("#weights", "data-drawn") == str(6 * 3)
    assert await page.locator("#signals tr").count() == 3
    # navigating inside the app keeps the session (no credentials in the URL any more)
    await page.click("#nav a[data-page=dashboard]")
    await page.wait_for_selector("body[data-ready=dashboard]")
    assert await page.text_content("#no-trades") == "Aún no hay operaciones cerradas en este periodo."
    assert page.errors == []  # type: ignore[attr-defined]


async def test_a_replica_serves_live_ticks_from_the_redis_stream(
    pg_url: str, redis_url: str, telegram: FakeTelegram, tmp_path: Path
) -> None:
    """The feed runs in one process (a worker), the page is served by another (a bot replica without workers)."""
    settings = Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path, secret_key="test-secret")
    worker = await build_harness(settings, telegram, limiter=Unlimited())
    replica = await build_harness(settings, telegram, limiter=Unlimited())
    runner = web.AppRunner(create_web_app(replica.app, replica.bot), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        site = Site(replica, ManualClock(START), url, None)  # type: ignore[arg-type]
        await site.user(ANN)
        assert worker.app.market.stream is not None
        worker.app.market.stream.start()
        async with aiohttp.ClientSession() as http, http.ws_connect(url + "/app/ws") as ws:
            await ws.send_json({"auth": "tma " + site.init_data(ANN)})
            assert (await ws.receive_json())["type"] == "ready"
            await ws.send_json({"watch": ["XAUUSD"]})
            assert (await ws.receive_json())["symbols"] == ["XAUUSD"]
            received: dict[str, Any] = {}
            for attempt in range(50):  # until the replica's stream reader is following
                worker.app.market.feed.bus.publish(Tick("XAUUSD", 1_900_000_000_000 + attempt, 2345.5, 2346.0))
                try:
                    received = await asyncio.wait_for(ws.receive_json(), 0.2)
                    break
                except TimeoutError:
                    continue
            assert received["type"] == "ticks" and received["ticks"][0]["s"] == "XAUUSD"
            assert received["ticks"][0]["b"] == 2345.5
    finally:
        await runner.cleanup()
        await replica.close()
        await worker.close()


async def test_dashboard_drawdown_is_one_episode(site: Site) -> None:
    """The dashboard's max drawdown pairs the money and the percent of the same fall, like /performance."""
    await site.user(ANN)
    await site.trade(ANN, Side.BUY, "EURUSD", 0.01)
    await site.close(ANN, "EURUSD")
    now = site.clock() // 1000
    async with UnitOfWork(site.app.sessionmaker) as uow:
        linked = await uow.trading.account(ANN, AccountKind.DEMO)
        assert linked is not None
        # 1000 → 500: 50 %, 500 lost; 10,000 → 9,000 loses more (1,000) but only 10 %
        equity = (1_000.0, 500.0, 10_000.0, 9_000.0, 9_500.0)
        await uow.equity.add([EquitySnapshot(ANN, "demo", linked[0].login, now - 3600 * (5 - i), v, v)
                              for i, v in enumerate(equity)])  # fmt: skip
        await uow.commit()
    status, body = await site.get("/api/dashboard?period=all", "tma " + site.init_data(ANN))
    assert status == 200
    m = body["metrics"]
    assert (m["max_drawdown"], m["max_drawdown_pct"]) == (500.0, 50.0)
    assert (m["max_drawdown_peak"], m["max_drawdown_trough"]) == (now - 5 * 3600, now - 4 * 3600)
    assert min(body["drawdown"]["v"]) == -50.0  # the curve's deepest point is that episode
