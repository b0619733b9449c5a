"""Start-up, memory and GC pauses of the bot's processes, beside a bare aiogram bot started the same way.

    python bench/startup.py [--runs 3] [--users 10000] [--skip-servers]

Every process is a real ``python`` child with the same FakeTelegram
(tests/fakes/telegram.py) as its Bot API at TELEGRAM_API_URL. The bare bot is
bench/bare_bot.py: aiogram's Bot, a Dispatcher with one echo handler, an
aiohttp server answering ``/healthz`` once it is about to poll (or has set its
webhook). Printed:

- start-up to a healthy ``/healthz`` (wall time, and the CPU seconds the
  process used until then: the steadier figure on a busy machine):
  ``python -m bot run`` on the embedded
  defaults (polling; restarts on one DATA_DIR, after a first start that
  creates and migrates its SQLite file, printed apart) and on PostgreSQL + Redis
  (tests/servers.py, webhook mode, WORKERS=external), beside the bare bot in
  polling and webhook mode; the median of ``--runs`` runs each, and the ratios;
  beside them, where the rest of the wall time went, from the main thread's
  /proc schedstat: runnable but waiting for a core (other processes had
  both; this machine's share of the load) and blocked (round trips, I/O,
  sleeps: the waiting start-up itself could remove), and the wall time less
  the run queue (what start-up takes with a core to itself) with its ratio;
- RSS of a replica after ``--users`` distinct users each sent /start through
  ``POST /webhooks/telegram`` (PostgreSQL + Redis), beside the bare webhook
  bot after the same updates, and the difference;
- RSS of ``python -m bot worker`` (same servers) once it has run a while,
  beside the bare bot's RSS after start-up;
- the replica's and the worker's ``hybrid_gc_pause_max_seconds`` (the longest
  recent full collection, bot/gc_tuning.py).

Project bytecode is compiled first, as deploy/Dockerfile does (the environment
may set PYTHONDONTWRITEBYTECODE). Prints figures; never fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.telegram import TOKEN, FakeTelegram  # noqa: E402
from tests.servers import (  # noqa: E402
    free_port, migrate_with_cli, postgres_missing, redis_missing, start_postgres, start_redis,
)

SECRET = "bench-webhook-secret"
TARGETS = "targets: start-up <= 1.3x bare; replica RSS <= bare + 80 MB; worker RSS <= bare + 150 MB; gen-2 pause <= 20 ms"
CONCURRENCY = 16  # webhook POSTs in flight at once while the users arrive

BARE_BOT = ROOT / "bench" / "bare_bot.py"  # polling, or a webhook with WEBHOOK_URL


class Process:
    """A child process started for one figure; stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int, started: float) -> None:
        self.proc, self.port, self.started = proc, port, started

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the process has used: what start-up costs whatever else shares the cores."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def runqueue_s(self) -> float:
        """Seconds the main thread was runnable but waited for a core (/proc schedstat: kernel 2.6.23+)."""
        return int(Path(f"/proc/{self.proc.pid}/schedstat").read_text().split()[1]) / 1e9

    def main_cpu_s(self) -> float:
        """CPU seconds of the main thread alone (schedstat), to split its wall time."""
        return int(Path(f"/proc/{self.proc.pid}/schedstat").read_text().split()[0]) / 1e9

    def rss_mb(self) -> tuple[float, float]:
        """(now, peak) resident memory in MB."""
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines())
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    async def healthy(self, http: aiohttp.ClientSession, timeout: float = 120.0) -> float:
        """Seconds from the start of the process to its first 200 on /healthz."""
        while time.perf_counter() - self.started < timeout:
            if self.proc.returncode is not None:
                raise SystemExit(f"a bench process exited with {self.proc.returncode}")
            try:
                async with http.get(self.base + "/healthz") as resp:
                    if resp.status == 200:
                        return time.perf_counter() - self.started
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.01)
        raise SystemExit("a bench process never became healthy")

    async def gauge(self, http: aiohttp.ClientSession, name: str) -> float:
        async with http.get(self.base + "/metrics") as resp:
            text = await resp.text()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return float("nan")

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def _env(api: str, port: int, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WEBHOOK_", "DATABASE_", "REDIS_", "WORKERS"))}
    env.update(BOT_TOKEN=TOKEN, TELEGRAM_API_URL=api, WEB_PORT=str(port), DATA_DIR=str(data_dir),
               LOG_LEVEL="WARNING", LOG_FORMAT="json", **extra)  # fmt: skip
    return env


async def _spawn(args: list[str], env: dict[str, str], port: int, log: Path) -> Process:
    with log.open("ab") as out:  # noqa: ASYNC230 (opened once per process)
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(sys.executable, *args, cwd=ROOT, env=env, stdout=out, stderr=out)
    return Process(proc, port, started)


def _servers_env(pg: str, redis: str, port: int) -> dict[str, str]:
    return {"DATABASE_URL": pg, "REDIS_URL": redis, "WORKERS": "external", "SECRET_KEY": "bench-secret",
            "WEBHOOK_URL": f"http://127.0.0.1:{port}", "WEBHOOK_SECRET": SECRET}  # fmt: skip


Starter = Callable[[int, Path], Awaitable[Process]]


@dataclass(frozen=True)
class Startup:
    """Medians of one starter: wall s to healthy, its CPU s, RSS MB; the main thread's run-queue, blocked, idle s."""

    wall: float
    cpu: float
    rss: float
    queued: float
    blocked: float
    idle: float  # wall less the run queue: what start-up takes with a core to itself


async def _startups(starts: list[Starter], runs: int, http: aiohttp.ClientSession, tmp: Path) -> list[Startup]:
    """Each starter's figures (Startup), medians over ``runs`` rounds.

    The starters take turns within each round, so a change in the machine's load weighs on all of them."""
    times: list[list[float]] = [[] for _ in starts]
    cpu: list[list[float]] = [[] for _ in starts]
    rss: list[list[float]] = [[] for _ in starts]
    queued: list[list[float]] = [[] for _ in starts]
    blocked: list[list[float]] = [[] for _ in starts]
    idle: list[list[float]] = [[] for _ in starts]
    for i in range(runs):
        for k, start in enumerate(starts):
            data = tmp / f"run-{time.monotonic_ns()}-{i}"
            data.mkdir()
            proc = await start(free_port(), data)
            try:
                wall = await proc.healthy(http)
                times[k].append(wall)
                cpu[k].append(proc.cpu_s())
                rss[k].append(proc.rss_mb()[0])
                queued[k].append(proc.runqueue_s())
                blocked[k].append(max(0.0, wall - proc.main_cpu_s() - queued[k][-1]))
                idle[k].append(wall - queued[k][-1])
            finally:
                await proc.stop()
    return [Startup(*map(statistics.median, figures)) for figures in zip(times, cpu, rss, queued, blocked, idle)]


def _start_update(user: int, update_id: int) -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id, "date": int(time.time()), "chat": {"id": user, "type": "private"},
            "from": {"id": user, "is_bot": False, "first_name": "Bench", "language_code": ("en", "ru", "es")[user % 3]},
            "text": "/start",
        },
    }  # fmt: skip


async def _send_users(http: aiohttp.ClientSession, proc: Process, users: int, first_user: int) -> tuple[float, int]:
    """Every user sends /start through the webhook; returns (seconds, non-200 answers)."""
    url, failures, queue = proc.base + "/webhooks/telegram", 0, iter(range(users))
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}

    async def lane() -> None:
        nonlocal failures
        for i in queue:
            async with http.post(url, json=_start_update(first_user + i, first_user + i), headers=headers) as resp:
                await resp.read()
                failures += resp.status != 200

    started = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
    return time.perf_counter() - started, failures


def _waits(bot: Startup, bare: Startup) -> None:
    """The wall time that was not CPU: queued for a core (the machine's load) or blocked (start-up's own waits)."""
    print(f"    waiting for a core (run queue)       {bot.queued:>8.2f}  {bare.queued:>8.2f}")
    print(f"    blocked (round trips, I/O, sleeps)   {bot.blocked:>8.2f}  {bare.blocked:>8.2f}")
    print(f"    wall less the run queue              {bot.idle:>8.2f}  {bare.idle:>8.2f}  {bot.idle / bare.idle:>6.2f}x")


async def main_async(args: argparse.Namespace) -> int:
    for package in ("bot", "handlers", "dialogs", "domain", "workers"):
        compileall.compile_dir(ROOT / package, quiet=2)
    telegram = await FakeTelegram().start()
    pg = redis = None
    with tempfile.TemporaryDirectory(prefix="ht-startup-") as tmp_name:
        tmp = Path(tmp_name)
        log = tmp / "processes.log"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as http:
                kept = tmp / "embedded"  # one DATA_DIR: the first start creates and migrates it, the rest restart
                kept.mkdir()

                def embedded_run(port: int, _data: Path) -> Awaitable[Process]:
                    return _spawn(["-m", "bot", "run"], _env(telegram.url, port, kept), port, log)

                first = await _startups([embedded_run], 1, http, tmp)
                embedded, bare_poll = await _startups([
                    embedded_run,
                    lambda port, data: _spawn([str(BARE_BOT)], _env(telegram.url, port, data), port, log),
                ], args.runs, http, tmp)  # fmt: skip
                print(f"first start, embedded (creates and migrates the SQLite file): {first[0].wall:.2f} s, CPU {first[0].cpu:.2f} s\n")
                print(f"start-up to healthy /healthz, median of {args.runs} (s)     bot      bare   ratio")
                print(f"  embedded defaults, polling             {embedded.wall:>8.2f}  {bare_poll.wall:>8.2f}  {embedded.wall / bare_poll.wall:>6.2f}x")
                print(f"    its CPU seconds                      {embedded.cpu:>8.2f}  {bare_poll.cpu:>8.2f}  {embedded.cpu / bare_poll.cpu:>6.2f}x")
                bare_rss = bare_poll.rss
                _waits(embedded, bare_poll)
                print(f"    RSS once healthy (MB)                {embedded.rss:>8.0f}  {bare_rss:>8.0f}")
                missing = postgres_missing() or redis_missing()
                if args.skip_servers or missing:
                    print(f"\nPostgreSQL + Redis figures skipped: {missing or '--skip-servers'}")
                    return 0
                pg, redis = start_postgres(), start_redis()
                if not await migrate_with_cli(pg.url):
                    print("migration failed")
                    return 1

                def replica(port: int, data: Path) -> Awaitable[Process]:
                    env = _env(telegram.url, port, data, **_servers_env(pg.url, redis.url, port))  # type: ignore[union-attr]
                    return _spawn(["-m", "bot", "run"], env, port, log)

                def bare_hook(port: int, data: Path) -> Awaitable[Process]:
                    env = _env(telegram.url, port, data, WEBHOOK_URL=f"http://127.0.0.1:{port}", WEBHOOK_SECRET=SECRET)
                    return _spawn([str(BARE_BOT)], env, port, log)

                servers, bare_web = await _startups([replica, bare_hook], args.runs, http, tmp)
                print(f"  PostgreSQL + Redis, webhook, external  {servers.wall:>8.2f}  {bare_web.wall:>8.2f}  {servers.wall / bare_web.wall:>6.2f}x")
                print(f"    its CPU seconds                      {servers.cpu:>8.2f}  {bare_web.cpu:>8.2f}  {servers.cpu / bare_web.cpu:>6.2f}x")
                _waits(servers, bare_web)
                print(f"    RSS once healthy (MB)                {servers.rss:>8.0f}  {bare_web.rss:>8.0f}")
                if args.startup_only:
                    return 0

                print(f"\nRSS after {args.users} distinct users sent /start through POST /webhooks/telegram (MB)")
                figures: dict[str, tuple[float, float, float, int]] = {}
                for name, start, first in (("replica", replica, 50_000_000), ("bare", bare_hook, 60_000_000)):
                    data = tmp / f"memory-{name}"
                    data.mkdir()
                    proc = await start(free_port(), data)
                    try:
                        await proc.healthy(http)
                        seconds, failures = await _send_users(http, proc, args.users, first)
                        now, peak = proc.rss_mb()
                        pause = await proc.gauge(http, "hybrid_gc_pause_max_seconds") if name == "replica" else float("nan")
                        figures[name] = (now, peak, pause, failures)
                        print(f"  {name:<8} now {now:>6.0f}  peak {peak:>6.0f}   {args.users / seconds:>7.0f} updates/s   non-200: {failures}")
                    finally:
                        await proc.stop()
                print(f"  difference replica - bare: {figures['replica'][0] - figures['bare'][0]:+.0f} MB now, "
                      f"{figures['replica'][1] - figures['bare'][1]:+.0f} MB peak")  # fmt: skip

                data = tmp / "worker"
                data.mkdir()
                port = free_port()
                env = _env(telegram.url, port, data, **_servers_env(pg.url, redis.url, port))
                worker = await _spawn(["-m", "bot", "worker"], env, port, log)
                try:
                    ready = await worker.healthy(http)
                    await asyncio.sleep(args.worker_seconds)  # a few passes of the feed, the agents, the scheduler
                    now, peak = worker.rss_mb()
                    worker_pause = await worker.gauge(http, "hybrid_gc_pause_max_seconds")
                finally:
                    await worker.stop()
                print(f"\npython -m bot worker: healthy in {ready:.2f} s; after {args.worker_seconds:.0f} s RSS now {now:.0f} MB "
                      f"(peak {peak:.0f}) beside the bare bot's {bare_rss:.0f} MB: {now - bare_rss:+.0f} MB")  # fmt: skip
                print("\nlongest recent gen-2 collection (hybrid_gc_pause_max_seconds)")
                print(f"  replica after the users: {figures['replica'][2] * 1000:.1f} ms")
                print(f"  worker:                  {worker_pause * 1000:.1f} ms")
                print(f"\n{TARGETS}")
        finally:
            await telegram.stop()
            for server in (pg, redis):
                if server is not None:
                    server.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="start-ups of each kind (the median is printed)")
    parser.add_argument("--users", type=int, default=10_000, help="distinct users sent through the webhook")
    parser.add_argument("--worker-seconds", type=float, default=20.0, help="how long the worker runs before its RSS")
    parser.add_argument("--skip-servers", action="store_true", help="only the embedded figures")
    parser.add_argument("--startup-only", action="store_true", help="only the start-up figures (no users, no worker)")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
