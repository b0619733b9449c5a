"""Load benchmark: simulated users through the real webhook path: a bare aiogram bot, one replica, two.

    python bench/load.py [--users 2000] [--seconds 30] [--think 3.0] [--quick] [--outbox-only | --no-outbox]

Starts throwaway PostgreSQL and Redis servers (as the tests do), a Bot API
stand-in on loopback, and the bot as real processes (`python -m bot run` in
webhook mode, WORKERS=external, TELEGRAM_API_URL pointing at the stand-in).
Each simulated user is a task that sends /start, then a realistic mix of
commands and button presses with exponential think time, one at a time: it
POSTs the update to /webhooks/telegram and waits for the bot's first reply to
its chat. The stand-in timestamps that reply; latency is from just before the
POST to the reply. Printed per phase: updates/s, p50/p95/p99, errors (non-200
webhook answers, answers carrying an ErrorDNA code, no reply within 10 s), the
replicas' CPU milliseconds per update (from /proc, over the measured window:
the cost of an update whoever else shares the cores), the CPU the whole
machine had left (idle share of every core, from /proc/stat), the replicas'
longest GC pause (``hybrid_gc_pause_max_seconds`` from their /metrics, "n/a"
when they do not export it) and their RSS (now / peak). The first phase is the
baseline: a bare aiogram bot (bench/bare_bot.py: same aiohttp webhook handler,
one reply per update, no middlewares, no database) behind the same stand-in
with the same generator and update mix; then one replica of the product, then
two with the bench round-robining the POSTs. Printed after the table: the
product's CPU per update over the bare bot's, and the scaling ratio (run it
with `--think 0` for saturation). `--quick` is a short run.

Then the outbox phase (alone with `--outbox-only`): a second stand-in that
enforces Telegram's flood limits as Telegram does (30 messages/s overall, about
1/s per private chat with a burst of 3, 20/min per group; over them a 429 with
``retry_after`` in the real wire format, tests/fakes/telegram.py FloodControl),
the real sender (`python -m bot worker`, OUTBOX_RATE from `--outbox-rate`), and
a burst of notifications (default 3,000 for 1,000 users, several each, plus a
few group chats) queued through OutboxNotifier into the outbox on PostgreSQL.
Printed: the configured rate, the achieved rate (steady state: between the 10th
and 90th percentile of deliveries) and the peak in any second, 429s from the
stand-in, keys delivered twice, keys never delivered, chats served out of
order, the smallest gap between two messages to one chat, and the lag from
queueing to delivery (p50/p99; in a burst of N the last waits about N/rate).
It prints figures; it never fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import itertools
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.notify import OutboxNotifier  # noqa: E402
from domain.db.engine import create_engine, create_sessionmaker  # noqa: E402
from domain.db.outbox import SqlOutboxRepository  # noqa: E402
from tests.fakes.telegram import MESSAGE_METHODS, TOKEN, FakeTelegram, FloodControl, _params  # noqa: E402
from tests.servers import (  # noqa: E402
    free_port, migrate_with_cli, postgres_missing, redis_missing, start_postgres, start_redis,
)

SECRET = "bench-webhook-secret"
REPLY_TIMEOUT = 10.0
REPLY_METHODS = {"sendmessage", "editmessagetext", "sendphoto", "senddocument", "answercallbackquery"}
# (what a user does, weight): the menus and read-only commands people use most, some typing.
MIX: list[tuple[str, int]] = [
    ("/help", 14), ("/status", 10), ("/price EURUSD", 12), ("/price XAUUSD", 6), ("/config", 8),
    ("/alerts", 8), ("/subscription", 5), ("/referral", 4), ("menu:help", 8), ("menu:config", 6),
    ("cfg:notify:news", 5), ("cfg:lang:", 4), ("hello there", 10),
]  # fmt: skip
TARGETS = ("targets: CPU per update <= 2x the bare aiogram bot's; with --users 2000 --think 10 p99 < 250 ms on one "
           "replica; at saturation (--think 0) two replicas >= 1.6x one")
BARE_BOT = ROOT / "bench" / "bare_bot.py"
GC_GAUGE = "hybrid_gc_pause_max_seconds"


class StandIn(FakeTelegram):
    """The Bot API stand-in: answers like Telegram and timestamps the first reply to each waiting chat."""

    def __init__(self) -> None:
        super().__init__()
        self.waiting: dict[int, asyncio.Future[tuple[float, str]]] = {}
        self.by_callback: dict[str, int] = {}
        self.api_calls = 0

    def expect(self, chat: int, callback_id: str | None = None) -> asyncio.Future[tuple[float, str]]:
        future: asyncio.Future[tuple[float, str]] = asyncio.get_running_loop().create_future()
        self.waiting[chat] = future
        if callback_id is not None:
            self.by_callback[callback_id] = chat
        return future

    async def _handle(self, request: web.Request) -> web.Response:
        at = time.perf_counter()
        method = request.match_info["method"]
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        params = await _params(request)
        self.api_calls += 1
        name = method.lower()
        if name in REPLY_METHODS:
            chat = params.get("chat_id")
            if chat is None and name == "answercallbackquery":
                chat = self.by_callback.pop(str(params.get("callback_query_id")), None)
            future = self.waiting.pop(int(chat), None) if chat is not None else None
            if future is not None and not future.done():
                future.set_result((at, str(params.get("text") or params.get("caption") or "")))
        return web.json_response({"ok": True, "result": self._result(method, params)})


@dataclass
class Phase:
    name: str
    replicas: int
    bare: bool = False  # the baseline: bench/bare_bot.py instead of `python -m bot run`
    latencies: list[float] = field(default_factory=list)
    updates: int = 0
    http_errors: int = 0
    coded: int = 0  # ErrorDNA reports the bots counted (hybrid_errors_total on their /metrics)
    no_reply: int = 0
    seconds: float = 0.0
    rss: list[tuple[int, int]] = field(default_factory=list)  # (now, peak) kB per replica
    cpu: float = 0.0  # CPU seconds the replicas spent in the measured window
    shutdown: float = 0.0  # seconds from SIGTERM until every replica exited
    idle: float = float("nan")  # share of the machine's CPU left idle over the measured window (0..1)
    gc_pause: list[float | None] = field(default_factory=list)  # GC_GAUGE per replica (None: not exported)

    @property
    def rate(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    @property
    def cpu_per_update(self) -> float:
        """Replica CPU milliseconds per update: what one update costs, whoever else shares the cores."""
        return 1000 * self.cpu / self.updates if self.updates else float("nan")

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_cpu() -> tuple[float, float]:
    """(idle, total) jiffies of every core so far, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return float(values[3] + values[4]), float(sum(values[:8]))


def _memory(pid: int) -> tuple[int, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields.get("VmRSS", "0 kB").split()[0]), int(fields.get("VmHWM", "0 kB").split()[0])


_ids = itertools.count(1)


def _message(user: int, lang: str, text: str) -> dict[str, Any]:
    return {
        "update_id": next(_ids),
        "message": {
            "message_id": next(_ids), "date": int(time.time()), "chat": {"id": user, "type": "private"},
            "from": {"id": user, "is_bot": False, "first_name": "Load", "language_code": lang}, "text": text,
        },
    }  # fmt: skip


def _press(user: int, lang: str, data: str) -> tuple[dict[str, Any], str]:
    callback_id = f"cb{next(_ids)}"
    update = {
        "update_id": next(_ids),
        "callback_query": {
            "id": callback_id, "chat_instance": "load", "data": data,
            "from": {"id": user, "is_bot": False, "first_name": "Load", "language_code": lang},
            "message": {"message_id": 1, "date": int(time.time()), "chat": {"id": user, "type": "private"}, "text": "…"},
        },
    }  # fmt: skip
    return update, callback_id


async def _user(
    user: int, rng: random.Random, http: aiohttp.ClientSession, urls: list[str], rr: itertools.count[int],
    standin: StandIn, phase: Phase, start_at: float, measure_from: float, stop_at: float, think: float,
) -> None:  # fmt: skip
    kinds = [k for k, w in MIX for _ in range(w)]
    lang = rng.choice(("en", "en", "ru", "es"))
    await asyncio.sleep(max(0.0, start_at - time.perf_counter()))
    first = True
    while time.perf_counter() < stop_at:
        kind = "/start" if first else rng.choice(kinds)
        first = False
        if ":" in kind and not kind.startswith("/"):
            update, callback_id = _press(user, lang, kind)
            reply = standin.expect(user, callback_id)
        else:
            update = _message(user, lang, kind)
            reply = standin.expect(user)
        url = urls[next(rr) % len(urls)]
        t0 = time.perf_counter()
        counted = t0 >= measure_from
        try:
            async with http.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}) as resp:
                status = resp.status
                await resp.read()
        except aiohttp.ClientError:
            status = 0
        if status != 200:
            if counted:
                phase.http_errors += 1
            standin.waiting.pop(user, None)
        else:
            try:
                at, _text = await asyncio.wait_for(asyncio.shield(reply), REPLY_TIMEOUT)
                if counted:
                    phase.updates += 1
                    phase.latencies.append((at - t0) * 1000)
            except TimeoutError:
                standin.waiting.pop(user, None)
                if counted:
                    phase.no_reply += 1
        await asyncio.sleep(1.0 + rng.expovariate(1.0 / max(0.01, think - 1.0)))


async def _healthy(port: int, proc: asyncio.subprocess.Process, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise SystemExit(f"the bot exited with {proc.returncode}")
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("the bot never became healthy")


async def _scrape(http: aiohttp.ClientSession, port: int) -> tuple[int, float | None]:
    """ErrorDNA reports counted by a replica, and its longest GC pause (None: the gauge is not exported)."""
    async with http.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    lines = text.splitlines()
    errors = int(sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("hybrid_errors_total{")))
    pauses = [float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(GC_GAUGE) and " " in line]
    return errors, max(pauses) if pauses else None


def _env(db_url: str, redis_url: str, api: str, port: int, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WEBHOOK_", "DATABASE_", "REDIS_"))}
    env.update(
        BOT_TOKEN=TOKEN, TELEGRAM_API_URL=api, DATABASE_URL=db_url, REDIS_URL=redis_url, WEB_PORT=str(port),
        WEBHOOK_URL=f"http://127.0.0.1:{port}", WEBHOOK_SECRET=SECRET, WORKERS="external", SECRET_KEY="bench-secret",
        LOG_LEVEL="WARNING", LOG_FORMAT="json", DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1",
    )  # fmt: skip
    return env


async def _run_phase(
    phase: Phase, users: int, first_user: int, seconds: float, think: float, ramp: float,
    db_url: str, redis_url: str, standin: StandIn, data_dir: Path,
) -> Phase:  # fmt: skip
    procs: list[asyncio.subprocess.Process] = []
    ports = [free_port() for _ in range(phase.replicas)]
    logs = [(data_dir / f"{phase.name.replace(' ', '-')}-{i}.log").open("wb") for i in range(phase.replicas)]  # noqa: ASYNC230
    try:
        command = [str(BARE_BOT)] if phase.bare else ["-m", "bot", "run"]
        for port, log in zip(ports, logs):
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable, *command, cwd=ROOT, env=_env(db_url, redis_url, standin.url, port, data_dir),
                    stdout=log, stderr=asyncio.subprocess.STDOUT,
                )  # fmt: skip
            )
        for port, proc in zip(ports, procs):
            await _healthy(port, proc)
        urls = [f"http://127.0.0.1:{p}/webhooks/telegram" for p in ports]
        rng = random.Random(first_user)
        now = time.perf_counter()
        measure_from, stop_at = now + ramp, now + ramp + seconds
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
            rr = itertools.count()
            tasks = [
                asyncio.create_task(
                    _user(first_user + i, random.Random(rng.random()), http, urls, rr, standin, phase,
                          now + ramp * i / users, measure_from, stop_at, think)
                )  # fmt: skip
                for i in range(users)
            ]
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            cpu_from, (idle_from, total_from) = sum(_cpu(p.pid) for p in procs), _machine_cpu()
            await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
            phase.cpu = sum(_cpu(p.pid) for p in procs) - cpu_from
            idle_to, total_to = _machine_cpu()
            phase.idle = (idle_to - idle_from) / (total_to - total_from) if total_to > total_from else float("nan")
            phase.seconds = seconds
            phase.rss = [_memory(p.pid) for p in procs]
            await asyncio.gather(*tasks)
            for port in ports if not phase.bare else ():
                coded, pause = await _scrape(http, port)
                phase.coded += coded
                phase.gc_pause.append(pause)
    finally:
        stopping = time.perf_counter()
        for proc in procs:
            if proc.returncode is None:
                proc.terminate()
        for proc in procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
        phase.shutdown = time.perf_counter() - stopping
        for log in logs:
            log.close()
    return phase


def _table(phases: list[Phase], users: int) -> str:
    head = f"{'phase':<11} {'users':>6} {'replies':>8} {'upd/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} " \
           f"{'http err':>8} {'errors':>6} {'no reply':>8} {'CPU ms/upd':>10} {'CPU left':>8} {'GC max ms':>10} " \
           f"{'RSS MB now/peak (per replica)':>30}"  # fmt: skip
    lines = [head, "-" * len(head)]
    for p in phases:
        rss = ", ".join(f"{now / 1024:.0f}/{peak / 1024:.0f}" for now, peak in p.rss)
        known = [g for g in p.gc_pause if g is not None]
        gc = f"{1000 * max(known):.1f}" if known else "n/a"
        coded = "n/a" if p.bare else str(p.coded)
        lines.append(
            f"{p.name:<11} {users:>6} {p.updates:>8} {p.rate:>8.1f} {p.pct(0.50):>8.1f} {p.pct(0.95):>8.1f} "
            f"{p.pct(0.99):>8.1f} {p.http_errors:>8} {coded:>6} {p.no_reply:>8} {p.cpu_per_update:>10.2f} "
            f"{100 * p.idle:>7.0f}% {gc:>10} {rss:>30}"
        )
    return "\n".join(lines)


# --- the outbox phase ---------------------------------------------------------

OUTBOX_TARGET = "target (issue 8): the configured global rate sustained, no 429 from the stand-in, none lost or twice"
KINDS = ("alert", "alert", "signal", "digest", "billing", "ticket", "autotrade")
FIRST_CHAT = 30_000_000
FIRST_GROUP = -1_001_700_000_000
PRODUCERS = 8  # concurrent producers queueing the burst (each chat always through the same one, in order)
STALL = 120.0  # seconds without a delivery or a change in the queue before the phase gives up waiting


class OutboxStandIn(FakeTelegram):
    """The Bot API stand-in with Telegram's flood limits; records when each message reached which chat."""

    def __init__(self) -> None:
        super().__init__(flood=FloodControl())
        self.delivered: list[tuple[float, int, str]] = []  # (wall time, chat, text)

    @property
    def refused(self) -> int:
        return sum(self.flood.refused.values()) if self.flood else 0

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        params = await _params(request)
        flooded = self.flooded(method, params)
        if flooded is not None:
            return flooded
        if method.lower() in MESSAGE_METHODS and params.get("chat_id") is not None:
            self.delivered.append((time.time(), int(params["chat_id"]), str(params.get("text") or "")))
        return web.json_response({"ok": True, "result": self._result(method, params)})


@dataclass
class Queued:
    chat: int
    seq: int  # the message's place among its chat's
    at: float = 0.0  # wall time its queueing committed


@dataclass
class OutboxFigures:
    rate: float
    users: int
    groups: int
    queued: dict[str, Queued]
    queue_seconds: float = 0.0
    delivered: list[tuple[float, int, str]] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    rss: tuple[int, int] = (0, 0)
    waited: float = 0.0
    complete: bool = True


def _outbox_plan(messages: int, users: int, groups: int, rng: random.Random) -> dict[str, Queued]:
    """Keys in queueing order: every user gets one, some many more (a heavy tail), groups a share each."""
    per_group = max(3, messages // 100) if groups else 0
    chats = [FIRST_CHAT + i for i in range(users)]
    weights = [min(8.0, rng.paretovariate(1.5)) for _ in chats]
    order = chats + rng.choices(chats, weights, k=max(0, messages - users - per_group * groups))
    order += [FIRST_GROUP - g for g in range(groups) for _ in range(per_group)]
    rng.shuffle(order)
    seqs: Counter[int] = Counter()
    plan: dict[str, Queued] = {}
    for chat in order:
        seqs[chat] += 1
        plan[f"{rng.choice(KINDS)}:bench:{chat}:{seqs[chat]}"] = Queued(chat, seqs[chat])
    return plan


async def _queue(db_url: str, plan: dict[str, Queued]) -> float:
    """Queue the plan through the product's OutboxNotifier, PRODUCERS at a time; returns the seconds taken."""
    engine = create_engine(db_url, pool_size=PRODUCERS, max_overflow=0)
    notifier = OutboxNotifier(create_sessionmaker(engine))
    lanes: list[list[tuple[str, Queued]]] = [[] for _ in range(PRODUCERS)]
    for key, item in plan.items():
        lanes[item.chat % PRODUCERS].append((key, item))

    async def produce(lane: list[tuple[str, Queued]]) -> None:
        for key, item in lane:
            await notifier.send(item.chat, f"bench {key}", key=key)
            item.at = time.time()

    started = time.perf_counter()
    try:
        await asyncio.gather(*(produce(lane) for lane in lanes))
    finally:
        await engine.dispose()
    return time.perf_counter() - started


async def _outbox_state(db_url: str, keys: list[str]) -> dict[str, int]:
    engine = create_engine(db_url, pool_size=1, max_overflow=0)
    try:
        async with create_sessionmaker(engine)() as session:
            return await SqlOutboxRepository(session).counts(keys)
    finally:
        await engine.dispose()


async def _run_outbox(args: argparse.Namespace, db_url: str, redis_url: str, data_dir: Path) -> OutboxFigures:
    standin = await OutboxStandIn().start()
    plan = _outbox_plan(args.outbox_messages, args.outbox_users, args.outbox_groups, random.Random(8))
    figures = OutboxFigures(args.outbox_rate, args.outbox_users, args.outbox_groups, plan)
    port = free_port()
    env = {**_env(db_url, redis_url, standin.url, port, data_dir), "OUTBOX_RATE": str(args.outbox_rate)}
    log = (data_dir / "outbox-worker.log").open("wb")  # noqa: ASYNC230
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "worker", cwd=ROOT, env=env, stdout=log, stderr=asyncio.subprocess.STDOUT
    )
    try:
        await _healthy(port, proc)
        figures.queue_seconds = await _queue(db_url, plan)
        keys = list(plan)
        started = time.perf_counter()
        expected = len(plan) / args.outbox_rate
        deadline, last_change, last, shown = started + 4 * expected + STALL, started, (-1, {}), started
        while time.perf_counter() < deadline and time.perf_counter() - last_change < STALL:
            await asyncio.sleep(1.0)
            state = await _outbox_state(db_url, keys)
            now = (len(standin.delivered), state)
            if now != last:
                last, last_change = now, time.perf_counter()
            if not state.get("pending") and not state.get("sending"):
                break
            if time.perf_counter() - shown >= 15:
                shown = time.perf_counter()
                print(f"  outbox: {len(standin.delivered)}/{len(plan)} delivered, {standin.refused} refused (429)", flush=True)
        else:
            figures.complete = False
        figures.waited = time.perf_counter() - started
        figures.rss = _memory(proc.pid)
        figures.statuses = await _outbox_state(db_url, keys)
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
        log.close()
        await standin.stop()
    figures.delivered = list(standin.delivered)
    with (data_dir / "outbox-deliveries.csv").open("w") as out:  # noqa: ASYNC230
        out.write("delivered_at,chat_id,key,seq,queued_at\n")
        for at, chat, text in figures.delivered:
            item = plan.get(text.removeprefix("bench "))
            out.write(f"{at:.6f},{chat},{text.removeprefix('bench ')},{item.seq if item else ''},{item.at if item else ''}\n")
    figures.refused = dict(standin.flood.refused) if standin.flood else {}
    return figures


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _most_within(times: list[float], window: float) -> int:
    """The most events in any ``window`` seconds (times sorted)."""
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def _outbox_report(f: OutboxFigures) -> str:
    prefix = "bench "
    by_key: dict[str, list[tuple[float, int]]] = defaultdict(list)
    other = 0
    for at, chat, text in f.delivered:
        if text.startswith(prefix) and text[len(prefix):] in f.queued:
            by_key[text[len(prefix):]].append((at, chat))
        else:
            other += 1
    first = sorted(min(d)[0] for d in by_key.values())  # first delivery of each key
    times = sorted(at for at, _chat, _text in f.delivered)
    duplicates = sum(1 for d in by_key.values() if len(d) > 1)
    lost = len(f.queued) - len(by_key)
    per_chat: dict[int, list[tuple[float, int]]] = defaultdict(list)
    for key, d in by_key.items():
        per_chat[f.queued[key].chat].append((min(d)[0], f.queued[key].seq))
    out_of_order = sum(1 for d in per_chat.values() if [s for _t, s in sorted(d)] != sorted(s for _t, s in d))
    chat_times: dict[int, list[float]] = defaultdict(list)
    for at, chat, _text in f.delivered:
        chat_times[chat].append(at)
    gaps: dict[bool, list[float]] = {True: [], False: []}  # group? → gaps between two messages to one chat
    for chat, ts in chat_times.items():
        ts.sort()
        gaps[chat < 0] += [b - a for a, b in zip(ts, ts[1:])]
    group_peak = max((_most_within(ts, 60.0) for chat, ts in chat_times.items() if chat < 0), default=0)
    lags = [min(d)[0] - f.queued[key].at for key, d in by_key.items()]
    if len(first) >= 10:
        lo, hi = int(0.1 * len(first)), int(0.9 * len(first))
        steady = (hi - lo) / (first[hi] - first[lo]) if first[hi] > first[lo] else float("nan")
    else:
        steady = float("nan")
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    counts = Counter(f.queued[k].chat for k in f.queued)
    private = [n for c, n in counts.items() if c > 0]
    groups = [n for c, n in counts.items() if c < 0]
    fmt = lambda xs: f"{min(xs):.3f} s" if xs else "n/a"  # noqa: E731
    refused = sum(f.refused.values())
    rows = [
        ("configured OUTBOX_RATE", f"{f.rate:g} msg/s (one `python -m bot worker`)"),
        ("queued", f"{len(f.queued)} notifications: {f.users} users ({min(private, default=0)}-{max(private, default=0)} "
                   f"each), {f.groups} groups ({groups[0] if groups else 0} each); in {f.queue_seconds:.1f} s "
                   f"by {PRODUCERS} producers"),
        ("delivered", f"{len(by_key)} in {span:.1f} s{'' if f.complete else f' (stopped waiting after {f.waited:.0f} s)'}"
                      + (f"; {other} other message(s)" if other else "")),
        ("achieved rate", f"{steady:.1f} msg/s steady (10th-90th pct of deliveries); "
                          f"{len(times) / span if span else float('nan'):.1f} overall; peak {_most_within(times, 1.0)} in any 1 s"),
        ("429 from stand-in", f"{refused} (global {f.refused.get('global', 0)}, private chat {f.refused.get('chat', 0)}, "
                              f"group {f.refused.get('group', 0)})"),
        ("duplicates", f"{duplicates} key(s) delivered more than once"),
        ("lost", f"{lost} key(s) never delivered; outbox rows: "
                 + ", ".join(f"{k} {v}" for k, v in sorted(f.statuses.items()))),
        ("per-chat order", f"{out_of_order} chat(s) served out of queueing order"),
        ("min gap per chat", f"private {fmt(gaps[False])}, group {fmt(gaps[True])} (group peak {group_peak} in any 60 s)"),
        ("lag queue->delivery", f"p50 {_pct(lags, 0.5):.1f} s, p99 {_pct(lags, 0.99):.1f} s, max {max(lags, default=float('nan')):.1f} s "
                                f"(a burst: the last waits ~{len(f.queued) / f.rate:.0f} s at the configured rate)"),
        ("worker RSS", f"{f.rss[0] / 1024:.0f}/{f.rss[1] / 1024:.0f} MB now/peak"),
    ]  # fmt: skip
    limits = "stand-in limits: 30 msg/s overall, 1 msg/s per private chat (burst 3), 20 msg/min per group"
    return "\n".join([limits, *(f"{name:<20} {value}" for name, value in rows), OUTBOX_TARGET])


async def main_async(args: argparse.Namespace) -> int:
    missing = postgres_missing() or redis_missing()
    if missing:
        print(f"cannot run: {missing}")
        return 2
    data_dir = Path(tempfile.mkdtemp(prefix="ht-load-"))
    pg, redis = start_postgres(), start_redis()
    standin = await StandIn().start()
    try:
        if not await migrate_with_cli(pg.url):
            print("migration failed")
            return 2
        if not args.outbox_only:
            _replica_phases(args, await _replicas(args, pg.url, redis.url, standin, data_dir), standin)
        if args.outbox:
            print(f"\noutbox phase: {args.outbox_messages} notifications, real sender against a flood-limited stand-in",
                  flush=True)  # fmt: skip
            print(_outbox_report(await _run_outbox(args, pg.url, redis.url, data_dir)))
        print(f"bot logs{' and outbox-deliveries.csv' if args.outbox else ''}: {data_dir}")
    finally:
        await standin.stop()
        redis.stop()
        pg.stop()
    return 0


async def _replicas(
    args: argparse.Namespace, db_url: str, redis_url: str, standin: StandIn, data_dir: Path
) -> list[Phase]:
    print(f"{args.users} users, think time ~{args.think:.1f} s, {args.ramp:.0f} s ramp-up then {args.seconds:.0f} s "
          f"measured per phase; PostgreSQL + Redis on loopback; CPUs: {os.cpu_count()}")  # fmt: skip
    phases: list[Phase] = []
    for i, (name, replicas, bare) in enumerate((("bare aiogram", 1, True), ("1 replica", 1, False), ("2 replicas", 2, False))):
        phase = await _run_phase(
            Phase(name, replicas, bare), args.users, 10_000_000 + i * 1_000_000, args.seconds, args.think, args.ramp,
            db_url, redis_url, standin, data_dir,
        )  # fmt: skip
        phases.append(phase)
        print(f"  {name}: {phase.updates} replies in {phase.seconds:.0f} s; stopped in {phase.shutdown:.1f} s", flush=True)
    return phases


def _replica_phases(args: argparse.Namespace, phases: list[Phase], standin: StandIn) -> None:
    print()
    print(_table(phases, args.users))
    bare, one, two = phases
    ratio = two.rate / one.rate if one.rate else float("nan")
    print(f"\nCPU per update, 1 replica / bare aiogram: {one.cpu_per_update:.2f} / {bare.cpu_per_update:.2f} ms = "
          f"{one.cpu_per_update / bare.cpu_per_update:.2f}x   (2 replicas: {two.cpu_per_update / bare.cpu_per_update:.2f}x)")
    print(f"scaling ratio (2 replicas / 1): {ratio:.2f}x   "
          f"per replica: {one.rate:.1f} / {two.rate / 2:.1f} updates/s; CPU left on the machine: "
          f"{100 * one.idle:.0f}% / {100 * two.idle:.0f}%")  # fmt: skip
    print(f"median of medians: {statistics.median([one.pct(0.5), two.pct(0.5)]):.1f} ms; Bot API calls: {standin.api_calls}")
    print(f"one core's worth of updates/s at the measured cost: {1000 / one.cpu_per_update:.0f} "
          f"(the load generator, stand-in, PostgreSQL and Redis share the same {os.cpu_count()} CPUs)")
    print(TARGETS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=2000, help="simulated concurrent users")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per phase")
    parser.add_argument("--ramp", type=float, default=10.0, help="seconds over which users arrive (not measured)")
    parser.add_argument("--think", type=float, default=3.0, help="mean think time between a reply and the next update")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: 300 users, 4 s ramp, 8 s per phase; outbox 600 notifications, 200 users, 3 groups")
    outbox = parser.add_mutually_exclusive_group()
    outbox.add_argument("--outbox-only", action="store_true", help="run only the outbox phase")
    outbox.add_argument("--no-outbox", dest="outbox", action="store_false", help="skip the outbox phase")
    parser.add_argument("--outbox-messages", type=int, default=3000, help="notifications queued in the outbox phase")
    parser.add_argument("--outbox-users", type=int, default=1000, help="private chats they go to")
    parser.add_argument("--outbox-groups", type=int, default=5, help="group chats that get a share too")
    parser.add_argument("--outbox-rate", type=float, default=25.0, help="OUTBOX_RATE of the worker (messages/s)")
    args = parser.parse_args()
    if args.quick:
        args.users, args.seconds, args.ramp = min(args.users, 300), 8.0, 4.0
        args.outbox_messages, args.outbox_users = min(args.outbox_messages, 600), min(args.outbox_users, 200)
        args.outbox_groups = min(args.outbox_groups, 3)
    args.outbox_users = max(1, min(args.outbox_users, args.outbox_messages))
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
