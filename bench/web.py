"""The web view (Mini App): dashboard JSON time, page-ready time in Chromium, tick-to-browser latency.

    python bench/web.py [--requests N] [--pages N] [--connections N] [--ticks N] [--days N] [--client-nice N]
                        [--client-sched other|batch] [--loop asyncio|uvloop] [--chromium PATH]

Runs the real aiohttp server (``create_app`` + ``create_web_app``) on the
embedded stack, on loopback, with one Pro user whose demo account holds one
year of H1 equity snapshots (8,760) and 2,000 deals (1,000 round trips over
five symbols, made on the simulated terminal on a manual clock).

* dashboard: ``GET /api/dashboard?period=all`` N times; time inside the server
  (an aiohttp middleware around the handler) and as the client sees it. First
  ``--cold`` requests with the analytics caches dropped before each (the
  uncached path: the whole equity history and deal history read again), then
  the steady state (caches validated by their change tokens on every request).
* page ready: headless Chromium (Debian's, driven by ``playwright``) opens
  ``/app/`` with signed initData until the dashboard is drawn; the page's own
  ``performance.now()`` at that moment (navigation start → charts drawn). The
  first load is reported apart (cold), then N loads with the browser's cache.
* ticks: N WebSocket connections held by separate client processes (their own
  event loops), all watching EURUSD; ticks published on the bus (every
  ``--interval-ms``) carry the publisher's monotonic clock (µs, shared by the
  processes on Linux). Two figures over all ticks × connections: the server's
  part (publish → the frame handed to that connection's socket) and end to
  end (→ parsed in the client process, which on a small machine includes the
  clients' own queueing: one client loop reads hundreds of sockets).
  ``--client-nice N`` lowers the client processes' priority (in production the
  pages are on other machines; here they share the cores with the server); on
  this machine it made no difference measurable above the noise, so it is 0.
  ``--client-sched batch`` runs the clients under ``SCHED_BATCH``: a client
  woken by a frame then never preempts the server in the middle of writing
  to the other pages, as pages on other machines cannot.
  A row of its own times each fan-out pass (one tick written to every page)
  in wall time and in the server thread's CPU time: a wall p99 far above the
  CPU p99 is the server waiting for a core, not work in the fan-out.

``--loop`` picks the server's event loop: asyncio's (the default, the figures
above were measured on it) or uvloop, which ``python -m bot run`` serves on
when it is installed. On uvloop a transport's ``write`` queues the bytes and
the loop sends them at the end of its iteration, so the server figure there
times the hand-over, not the send: compare the loops on the end-to-end row.
The client processes always run asyncio's loop.

The collector is set up as ``python -m bot run`` sets it once started
(bot/gc_tuning.py ``settle``: the start-up heap frozen, higher thresholds).
Each timed phase also names the full (generation 2) garbage collections that
ran in it and the longest one: on a heap of a few hundred thousand objects one
costs 100+ ms on a loaded machine and explains a lone slow request. For the
WebSocket phase a row of its own gives the worst one (``gc.callbacks`` in this
process, which is the server), over the whole phase and while ticks flowed. The load
average at the start and the end is printed last. Prints a table; never fails
on time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
from array import array
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiogram.types import Chat, Message, Update, User  # noqa: E402
from aiohttp import web  # noqa: E402

from bot import gc_tuning  # noqa: E402
from bot.app import create_app, create_bot  # noqa: E402
from bot.console import CONSOLE_TOKEN, ConsoleSession  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.web import miniapp  # noqa: E402
from bot.web.app import create_web_app  # noqa: E402
from bot.web.auth import sign_init_data  # noqa: E402
from domain.db.analytics import EquitySnapshot  # noqa: E402
from domain.db.uow import UnitOfWork  # noqa: E402
from domain.market.clock import ManualClock  # noqa: E402
from domain.market.gateway import OrderAction, OrderRequest  # noqa: E402
from domain.market.models import Side, Tick  # noqa: E402

USER = 777
START = datetime(2025, 11, 17, 0, 0, tzinfo=UTC)  # a Monday, one year before the sim's "now" in the tests
SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "AUDUSD")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
]  # fmt: skip


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def init_data(user_id: int = USER) -> str:
    user = {"id": user_id, "first_name": "Bench", "language_code": "en"}
    return sign_init_data(CONSOLE_TOKEN, {"auth_date": int(time.time()), "query_id": "bench", "user": user})


async def seed(app: Any, bot: Any, deals: int, days: int = 365) -> tuple[int, int]:
    """A Pro user with a year of hourly equity and ``deals`` deals; returns (snapshots, deals) stored."""
    clock = ManualClock(START)
    app.market.hub.use_clock(clock)
    message = Message(message_id=1, date=datetime.now(UTC), chat=Chat(id=USER, type="private"),
                      from_user=User(id=USER, is_bot=False, first_name="Bench", language_code="en"), text="/start")  # fmt: skip
    await app.dispatcher.feed_update(bot, Update(update_id=1, message=message))
    async with UnitOfWork(app.sessionmaker) as uow:
        await uow.users.update(USER, tier="pro")
        await uow.commit()
    app.users.forget(USER)
    async with UnitOfWork(app.sessionmaker) as uow:
        account = await app.market.trading.demo_account(uow, USER)
    gw = app.market.hub.demo_gateway(account.login)
    hours = days * 24
    every = hours / (deals / 2)  # one round trip per `every` hours, closed half-way
    snapshots: list[EquitySnapshot] = []
    made, open_ticket, next_open, i = 0, None, 0.0, 0
    for hour in range(hours):
        clock.advance(3600)
        if open_ticket is None and hour >= next_open and made < deals:
            symbol = SYMBOLS[i % len(SYMBOLS)]
            side = Side.BUY if i % 3 else Side.SELL
            volume = 0.01 if symbol == "XAUUSD" else 0.1
            result = await gw.order_send(OrderRequest(OrderAction.DEAL, symbol, side, volume))
            if result.ok:
                positions = await gw.positions(symbol)
                open_ticket = (positions[-1].ticket, symbol, volume) if positions else None
                made += 1
                i += 1
        elif open_ticket is not None and hour >= next_open + every / 2:
            ticket, symbol, volume = open_ticket
            result = await gw.order_send(OrderRequest(OrderAction.CLOSE, symbol, volume=volume, position=ticket))
            if result.ok:
                made += 1
                open_ticket = None
                next_open += every
        info = await gw.account()
        snapshots.append(EquitySnapshot(USER, "demo", account.login, clock() // 1000, info.balance, info.equity))
    async with UnitOfWork(app.sessionmaker) as uow:
        for start in range(0, len(snapshots), 1000):
            await uow.equity.add(snapshots[start : start + 1000])
        await uow.commit()
    return len(snapshots), made


async def dashboard_times(
    url: str, n: int, server_ms: list[float], before: Any = None
) -> tuple[list[float], list[float], int]:
    """``n`` requests after 3 warm-ups; ``before()`` runs ahead of each (e.g. to drop the caches)."""
    server_ms.clear()
    headers = {"Authorization": "tma " + init_data()}
    client: list[float] = []
    size = 0
    async with aiohttp.ClientSession() as http:
        for k in range(n + 3):
            if before is not None:
                before()
            t0 = time.perf_counter()
            async with http.get(url + "/api/dashboard?period=all", headers=headers) as r:
                body = await r.read()
                assert r.status == 200, body[:200]
            if k >= 3:  # the first few warm caches (tier median, symbol specs)
                client.append((time.perf_counter() - t0) * 1000)
            size = len(body)
    return server_ms[3:], client, size


async def page_ready(url: str, chromium: str, loads: int) -> tuple[float, list[float]]:
    from playwright.async_api import async_playwright

    target = f"{url}/app/#tgWebAppData={quote(init_data(), safe='')}&tgWebAppVersion=8.0"
    times: list[float] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        context = await browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2)
        for _ in range(loads + 1):
            page = await context.new_page()
            await page.goto(target)
            await page.wait_for_selector("body[data-ready=dashboard]")
            await page.wait_for_function("() => window.HTApp.state.readyAt > 0")
            times.append(float(await page.evaluate("() => window.HTApp.state.readyAt")))
            await page.close()
        await browser.close()
    return times[0], times[1:]


CLIENT = r"""
import asyncio, json, os, sys, time
import aiohttp

async def main(url, auth, n, ticks):
    lat = []
    ready = asyncio.Event()
    counts = [0]
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def one():
            async with http.ws_connect(url, max_msg_size=0) as ws:
                await ws.send_str(json.dumps({"auth": auth}))
                await ws.receive()  # ready
                await ws.send_str(json.dumps({"watch": ["EURUSD"]}))
                await ws.receive()  # watching
                counts[0] += 1
                if counts[0] == n:
                    ready.set()
                got = 0
                while got < ticks:
                    msg = await ws.receive()
                    now = time.perf_counter_ns() // 1000
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        break
                    for t in json.loads(msg.data)["ticks"]:
                        lat.append((now - t["t"]) / 1000.0)
                        got = t["b"]
        tasks = [asyncio.create_task(one()) for _ in range(n)]
        await ready.wait()
        print("READY", flush=True)
        await asyncio.wait(tasks, timeout=120)
    print(json.dumps(lat), flush=True)

os.nice(int(sys.argv[5]))
if sys.argv[6] == "batch":  # never preempt a running task on wake-up (the server mid-fan-out)
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


async def tick_latency(app: Any, url: str, connections: int, ticks: int, interval: float,
                       procs: int, nice: int, sched: str = "other") -> tuple[list[float], list[float], int, float,
                                                       list[tuple[float, float]]]:  # fmt: skip
    """(end-to-end samples in the client processes, server samples publish → written to the socket, expected,
    perf_counter when the first tick was published, (wall ms, CPU ms) of each fan-out pass)."""
    ws_url = url.replace("http://", "ws://") + "/app/ws"
    # preallocated and append-only (no new tuples per write), so the probe adds no garbage-collector work
    at_us = array("q")
    frames: list[bytes] = []  # the frame each time belongs to (one object per tick, shared by the pages)
    clock_us = time.perf_counter_ns
    original = miniapp.Connection._write

    def timed_write(self: Any, frame: bytes) -> None:
        original(self, frame)
        at_us.append(clock_us() // 1000)
        frames.append(frame)

    miniapp.Connection._write = timed_write  # type: ignore[method-assign]
    # each fan-out pass (one tick to every page): its wall time and this thread's CPU time; CPU far below wall
    # means the process was waiting for a core (or was interrupted), not working
    flush = miniapp.LiveTicks._flush
    flush_wall_us, flush_cpu_us = array("q"), array("q")
    cpu_ns = time.thread_time_ns

    def timed_flush(self: Any) -> None:
        w0, c0 = clock_us(), cpu_ns()
        flush(self)
        flush_wall_us.append((clock_us() - w0) // 1000)
        flush_cpu_us.append((cpu_ns() - c0) // 1000)

    miniapp.LiveTicks._flush = timed_flush  # type: ignore[method-assign]
    shares = [connections // procs + (1 if i < connections % procs else 0) for i in range(procs)]
    clients = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", CLIENT, ws_url, "tma " + init_data(), str(n), str(ticks), str(nice), sched,
            stdout=asyncio.subprocess.PIPE,
        )
        for n in shares if n
    ]  # fmt: skip
    try:
        for proc in clients:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 120)
            assert line.strip() == b"READY", line
        bus = app.market.feed.bus
        await asyncio.sleep(0.5)
        flowing = time.perf_counter()
        for k in range(1, ticks + 1):  # bid carries the sequence number, time_msc the publisher's clock (µs)
            bus.publish(Tick("EURUSD", time.perf_counter_ns() // 1000, float(k), float(k) + 0.0001))
            await asyncio.sleep(interval)
        samples: list[float] = []
        for proc in clients:
            out, _ = await asyncio.wait_for(proc.communicate(), 120)
            samples += json.loads(out.decode().strip().splitlines()[-1])
    finally:
        miniapp.Connection._write = original  # type: ignore[method-assign]
        miniapp.LiveTicks._flush = flush  # type: ignore[method-assign]
    sent_at = {id(f): [t["t"] for t in json.loads(_payload(f))["ticks"]] for f in frames}
    server = [(done - t) / 1000.0 for done, frame in zip(at_us, frames, strict=True) for t in sent_at[id(frame)]]
    passes = [(w / 1000.0, c / 1000.0) for w, c in zip(flush_wall_us, flush_cpu_us, strict=True)]
    return samples, server, connections * ticks, flowing, passes


def _payload(frame: bytes) -> bytes:
    """The text of one unmasked WebSocket frame as the server wrote it."""
    n = frame[1] & 0x7F
    return frame[2:] if n < 126 else frame[4:] if n == 126 else frame[10:]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--cold", type=int, default=30, help="requests with the analytics caches dropped first")
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--ticks", type=int, default=100)
    parser.add_argument("--interval-ms", type=float, default=100.0, help="between published ticks")
    parser.add_argument("--client-procs", type=int, default=2, help="processes holding the WebSocket clients")
    parser.add_argument("--deals", type=int, default=2000)
    parser.add_argument("--days", type=int, default=365, help="of hourly equity history (shorter: a quicker run)")
    parser.add_argument("--client-nice", type=int, default=0, help="niceness of the WebSocket client processes")
    parser.add_argument("--client-sched", choices=("other", "batch"), default="other",
                        help="the client processes' scheduling policy (batch: they never preempt the server on wake-up)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio",
                        help="the server's event loop (uvloop: what `python -m bot run` serves on)")
    parser.add_argument("--chromium", default=os.environ.get("CHROMIUM", "/usr/bin/chromium"))
    args = parser.parse_args()
    args.have_chromium = Path(args.chromium).exists()
    return args


def _gc_note(pauses: list[tuple[int, float, float]]) -> str:
    """The longest full (generation 2) collection in a phase: the usual cause of a lone slow request."""
    full = [ms for gen, ms, _at in pauses if gen == 2]
    return f"  (full GC: {len(full)}, longest {max(full):.0f} ms)" if full else ""


def _gc_worst(pauses: list[tuple[int, float, float]], since: float = -math.inf) -> str:
    """Count and worst pause of the full (generation 2) collections that started at or after ``since``."""
    full = [ms for gen, ms, at in pauses if gen == 2 and at >= since]
    return f"{len(full)}, worst {max(full):.1f} ms" if full else "none"


async def main(args: argparse.Namespace) -> None:
    load0 = os.getloadavg()[0]
    gc_pauses: list[tuple[int, float, float]] = []  # (generation, pause ms, perf_counter at its start)
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_pauses.append((info["generation"], (time.perf_counter() - gc_started[0]) * 1000, gc_started[0]))

    gc.callbacks.append(on_gc)
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), secret_key="bench", database_url=None, redis_url=None)
        app = await create_app(settings)
        bot = create_bot(settings, session=ConsoleSession(USER, lambda _s: None, Path(tmp)), token=CONSOLE_TOKEN)
        t0 = time.perf_counter()
        snapshots, deals = await seed(app, bot, args.deals, args.days)
        seeded = time.perf_counter() - t0
        gc_tuning.settle()  # as `python -m bot run` does once started: start-up objects frozen, thresholds raised

        server_ms: list[float] = []

        @web.middleware
        async def timing(request: web.Request, handler: Any) -> web.StreamResponse:
            start = time.perf_counter()
            response = await handler(request)
            if request.path == "/api/dashboard":
                server_ms.append((time.perf_counter() - start) * 1000)
            return response

        web_app = create_web_app(app, bot)
        web_app.middlewares.append(timing)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        rows: list[tuple[str, str]] = [
            ("data", f"{snapshots} H1 equity snapshots, {deals} deals (seeded in {seeded:.1f} s)"),
        ]
        try:
            gc_pauses.clear()
            uncached, _client, _size = await dashboard_times(url, args.cold, server_ms, app.analytics.forget)
            rows.append(("dashboard JSON, uncached (caches dropped), server p50 / p95",
                         f"{pct(uncached, 50):.1f} / {pct(uncached, 95):.1f} ms{_gc_note(gc_pauses)}"))  # fmt: skip
            gc_pauses.clear()
            server, client, size = await dashboard_times(url, args.requests, server_ms)
            rows += [
                ("dashboard JSON, server p50 / p95",
                 f"{pct(server, 50):.1f} / {pct(server, 95):.1f} ms{_gc_note(gc_pauses)}"),  # fmt: skip
                ("dashboard JSON, client p50 / p95", f"{pct(client, 50):.1f} / {pct(client, 95):.1f} ms"),
                ("dashboard JSON size", f"{size / 1024:.0f} KiB"),
            ]
            if args.have_chromium:
                cold, warm = await page_ready(url, args.chromium, args.pages)
                rows += [
                    ("page ready in Chromium, first load", f"{cold:.0f} ms"),
                    (f"page ready in Chromium, p50 / max of {len(warm)}",
                     f"{statistics.median(warm):.0f} / {max(warm):.0f} ms"),
                ]  # fmt: skip
            else:
                rows.append(("page ready in Chromium", f"skipped: {args.chromium} not found"))
            gc_pauses.clear()
            samples, server, expected, flowing, passes = await tick_latency(
                app, url, args.connections, args.ticks, args.interval_ms / 1000, args.client_procs, args.client_nice,
                args.client_sched,
            )
            where = f"{args.connections} connections, a tick every {args.interval_ms:.0f} ms"
            rows += [
                (f"tick → socket write (server), {where}",
                 f"p50 {pct(server, 50):.2f} / p99 {pct(server, 99):.2f} / max {max(server):.2f} ms"
                 f"{_gc_note(gc_pauses)}"),
                (f"tick → client received ({args.client_procs} client processes at nice {args.client_nice}, "
                 f"scheduled {args.client_sched})",
                 f"p50 {pct(samples, 50):.2f} / p99 {pct(samples, 99):.2f} / max {max(samples):.2f} ms"),
                (f"one fan-out pass (a tick to {args.connections} pages), wall p50 / p99 · CPU p50 / p99",
                 f"{pct([w for w, _ in passes], 50):.2f} / {pct([w for w, _ in passes], 99):.2f} ms · "
                 f"{pct([c for _, c in passes], 50):.2f} / {pct([c for _, c in passes], 99):.2f} ms"
                 f" ({len(passes)} passes)"),
                ("ticks received / sent", f"{len(samples)} / {expected}"),
                ("full (gen 2) GC in the server, WebSocket phase: all / while ticks flowed",
                 f"{_gc_worst(gc_pauses)} / {_gc_worst(gc_pauses, flowing)}"),
            ]  # fmt: skip
        finally:
            await runner.cleanup()
            await app.close()
            await bot.session.close()

    gc.callbacks.remove(on_gc)
    rows.append(("load average at start → end", f"{load0:.2f} → {os.getloadavg()[0]:.2f}"))
    width = max(len(k) for k, _ in rows)
    print(f"bench/web.py · python {sys.version.split()[0]} · {os.cpu_count()} CPUs · server loop {args.loop}")
    for key, value in rows:
        print(f"  {key.ljust(width)}  {value}")


def run(args: argparse.Namespace) -> None:
    """On the loop asked for (uvloop falls back to asyncio's, and says so, when it is not installed)."""
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            args.loop = "asyncio (uvloop not installed)"
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(main(args))
            return
    asyncio.run(main(args))


if __name__ == "__main__":
    run(parse_args())
