"""`python -m bot worker`: the workers alone, for scaled-out deployments.

Runs the market feed, the alert evaluator (following rule changes the bot
replicas publish, workers/alert_sync.py), the agent runner, the scheduler
(one leader among all workers, workers/scheduler.py), the notification outbox
sender and the broadcast sender, plus the web server for ``/healthz`` and
``/metrics`` on WEB_HOST:WEB_PORT. It handles no updates: bot replicas run
``python -m bot run`` with WORKERS=external and only queue proactive messages.
Both sides share PostgreSQL (the outbox, the rules) and Redis (rule changes,
the scheduler lease, the symbols users asked about, which the feed polls), so
REDIS_URL is required. Several workers may run: one leads the scheduler, and
they split the agent runner's (symbol, timeframe) jobs through a Redis Streams
consumer group, taking over a dead worker's share (workers/partition.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from aiohttp import web

from bot import gc_tuning
from bot.app import create_app, create_bot
from bot.settings import Settings
from bot.web.app import create_web_app

log = logging.getLogger("hybrid.worker")


def check(settings: Settings) -> str | None:
    """Why this worker cannot start, or None (bot/settings.py ``start_problem``)."""
    return settings.start_problem("worker")


async def run_worker(settings: Settings, started: float | None = None, *, stop: asyncio.Event | None = None) -> int:
    started = started if started is not None else time.perf_counter()
    problem = check(settings)
    if problem is not None:
        print(problem)
        return 2
    app = await create_app(settings)
    bot = create_bot(settings)
    runner = web.AppRunner(create_web_app(app, bot), access_log=None)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    monitor: gc_tuning.GcMonitor | None = None
    try:
        await runner.setup()
        await web.TCPSite(runner, settings.web_host, settings.web_port).start()
        app.start_background(bot, workers=True)
        monitor = gc_tuning.settle(app.metrics.registry)  # freeze start-up objects; the pause gauge
        log.info(
            "Hybrid Trader worker ready on http://%s:%d in %.2fs",
            settings.web_host, settings.web_port, time.perf_counter() - started,
        )  # fmt: skip
        await stop.wait()
    finally:
        if monitor is not None:
            monitor.close()
        log.info("worker shutting down")
        await runner.cleanup()
        await app.close()
        await bot.session.close()
    return 0
