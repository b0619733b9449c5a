"""Updates through the full middleware chain vs a bare aiogram Dispatcher, in one run.

    python bench/updates.py [--updates N] [--users U]

Both paths use the same in-process Bot session (no network) and the same
updates: a mix of /start, /help, /status, /config button presses and unknown
text from U distinct users (10 updates each by default: within the free tier's
burst, so the rate limiter answers 'allowed' instead of short-circuiting).
A third path runs the same middleware chain with no commands registered (every
update reaches the one-line fallback handler): the chain's own cost.
The full path runs on the embedded stack (SQLite in a temp dir, in-memory
stores) with users created on their first update. Each path also prints the
CPU time it took per update (``time.process_time``, every thread of the
process), and the ratios are repeated by CPU time: on shared cores wall-clock
throughput moves with the neighbours' load, CPU time much less. Also prints the time from
starting `python -m bot run` to a healthy /healthz, and RSS. Prints figures;
never fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiogram import Dispatcher  # noqa: E402
from aiogram.types import CallbackQuery, Chat, Message, Update, User  # noqa: E402

from bench.bare_bot import make_dispatcher  # noqa: E402
from bot.app import create_app, create_bot  # noqa: E402
from bot.console import CONSOLE_TOKEN, ConsoleSession  # noqa: E402
from bot.registry import Registry  # noqa: E402
from bot.settings import Settings  # noqa: E402

_ids = itertools.count(1)  # update ids unique across every batch (updates are de-duplicated)
MIX = [("/start", 15), ("/help", 25), ("/status", 15), ("press", 20), ("hello there", 25)]
PRESSES = ["cfg:lang:", "cfg:tz:", "cfg:notify:news", "menu:config", "menu:help"]


def make_updates(n: int, users: int, seed: int = 7, first_user: int = 10_000) -> list[Update]:
    rng = random.Random(seed)
    kinds = [k for k, w in MIX for _ in range(w)]
    ids = _ids
    people = [User(id=first_user + i, is_bot=False, first_name=f"U{i}", language_code=rng.choice(["en", "ru", "es"])) for i in range(users)]
    now = datetime.now(UTC)
    out: list[Update] = []
    for i in range(n):
        person = people[i % users]
        chat = Chat(id=person.id, type="private")
        kind = "/start" if i < users else rng.choice(kinds)  # everyone's first update is /start
        if kind == "press":
            message = Message(message_id=next(ids), date=now, chat=chat, text="…")
            query = CallbackQuery(id=str(i), from_user=person, chat_instance="b", message=message, data=rng.choice(PRESSES))
            out.append(Update(update_id=next(ids), callback_query=query))
        else:
            message = Message(message_id=next(ids), date=now, chat=chat, from_user=person, text=kind)
            out.append(Update(update_id=next(ids), message=message))
    return out


def kind_of(update: Update) -> str:
    if update.message is not None:
        return update.message.text or ""
    return "press " + (update.callback_query.data or "")  # type: ignore[union-attr]


CPU: dict[int, float] = {}  # id(latencies) -> CPU seconds the process spent in that drive (every thread)


async def drive(dp: Dispatcher, bot, updates: list[Update]) -> tuple[float, list[float]]:  # type: ignore[no-untyped-def]
    latencies: list[float] = []
    start, cpu = time.perf_counter(), time.process_time()
    for update in updates:
        t0 = time.perf_counter()
        await dp.feed_update(bot, update)
        latencies.append((time.perf_counter() - t0) * 1000)
    CPU[id(latencies)] = time.process_time() - cpu
    return time.perf_counter() - start, latencies


def by_kind(updates: list[Update], latencies: list[float]) -> dict[str, list[float]]:
    groups: dict[str, list[float]] = {}
    for update, ms in zip(updates, latencies):
        groups.setdefault(kind_of(update), []).append(ms)
    return groups


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def startup_to_ready() -> float:
    from tests.fakes.telegram import TOKEN, FakeTelegram
    from tests.servers import free_port
    import aiohttp

    telegram = await FakeTelegram().start()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": telegram.url, "WEB_PORT": str(port), "DATA_DIR": tmp}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", "run", cwd=ROOT, env=env,
                                                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)  # fmt: skip
        ready = float("nan")
        async with aiohttp.ClientSession() as http:
            while time.perf_counter() - start < 60:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        if resp.status == 200:
                            ready = time.perf_counter() - start
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.01)
        proc.terminate()
        await proc.wait()
    await telegram.stop()
    return ready


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--updates", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=1_000)
    args = parser.parse_args()
    updates = make_updates(args.updates, args.users)

    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), secret_key="bench", database_url=None, redis_url=None)
        app = await create_app(settings)
        app.start_background()
        bot = create_bot(settings, session=ConsoleSession(0, lambda _s: None, Path(tmp)), token=CONSOLE_TOKEN)
        warm_up = make_updates(args.users, args.users // 10, first_user=1_000_000)  # other users: no rate-limit carry-over
        await drive(app.dispatcher, bot, warm_up)
        full_s, full_lat = await drive(app.dispatcher, bot, updates)
        await app.close()

    with tempfile.TemporaryDirectory() as tmp:  # the chain alone: no commands, every update hits the fallback
        settings = Settings(data_dir=Path(tmp), secret_key="bench", database_url=None, redis_url=None)
        chain = await create_app(settings, registry=Registry([]))
        chain.start_background()
        chain_bot = create_bot(settings, session=ConsoleSession(0, lambda _s: None, Path(tmp)), token=CONSOLE_TOKEN)
        await drive(chain.dispatcher, chain_bot, make_updates(args.users, args.users // 10, first_user=2_000_000))
        chain_s, chain_lat = await drive(chain.dispatcher, chain_bot, make_updates(args.updates, args.users, first_user=3_000_000))
        await chain.close()

    bare_bot = create_bot(Settings(), session=ConsoleSession(0, lambda _s: None, Path("/tmp")), token=CONSOLE_TOKEN)
    bare = make_dispatcher()  # bench/bare_bot.py, the bare bot of the process benches
    await drive(bare, bare_bot, make_updates(args.users, args.users // 10, first_user=1_000_000))
    bare_s, bare_lat = await drive(bare, bare_bot, updates)

    full_rate, chain_rate, bare_rate = args.updates / full_s, args.updates / chain_s, args.updates / bare_s
    print(f"{args.updates} updates from {args.users} users, one at a time, in-process\n")
    full_cpu, chain_cpu, bare_cpu = (1000 * CPU[id(lat)] / args.updates for lat in (full_lat, chain_lat, bare_lat))
    print(f"{'path':<28}{'updates/s':>12}{'p50 ms':>10}{'p99 ms':>10}{'CPU ms/upd':>12}")
    print(f"{'full middleware chain':<28}{full_rate:>12.0f}{statistics.median(full_lat):>10.3f}{pct(full_lat, 0.99):>10.3f}{full_cpu:>12.3f}")
    print(f"{'middlewares, no commands':<28}{chain_rate:>12.0f}{statistics.median(chain_lat):>10.3f}{pct(chain_lat, 0.99):>10.3f}{chain_cpu:>12.3f}")
    print(f"{'bare aiogram Dispatcher':<28}{bare_rate:>12.0f}{statistics.median(bare_lat):>10.3f}{pct(bare_lat, 0.99):>10.3f}{bare_cpu:>12.3f}")
    full_kinds, bare_kinds = by_kind(updates, full_lat), by_kind(updates, bare_lat)
    print(f"\n{'p50 by update (ms)':<28}{'full':>10}{'bare':>10}")
    for kind in sorted(full_kinds):
        print(f"  {kind:<26}{statistics.median(full_kinds[kind]):>10.3f}{statistics.median(bare_kinds[kind]):>10.3f}")
    print(f"\nratio full/bare throughput: {full_rate / bare_rate:.2f}   (target >= 0.3)")
    print(f"ratio middlewares-only/bare: {chain_rate / bare_rate:.2f}   (target >= 0.6: the chain's own cost, without command work)")
    print(f"full chain p99: {pct(full_lat, 0.99):.2f} ms   (target < 5 ms)")
    print(f"the same ratios by CPU time per update (what other processes on the cores cannot skew): "
          f"full {bare_cpu / full_cpu:.2f}, middlewares only {bare_cpu / chain_cpu:.2f}")
    print(f"startup to healthy /healthz (python -m bot run): {await startup_to_ready():.2f} s   (beside a bare aiogram bot: bench/startup.py)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RSS after the run: {rss_mb():.0f} MB (peak {peak:.0f} MB)")


if __name__ == "__main__":
    asyncio.run(main())
