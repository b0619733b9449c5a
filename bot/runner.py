"""`python -m bot run`: long polling or webhook, with the web server beside it."""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from aiogram import Bot, Dispatcher
from aiogram.types import BotCommand, BotCommandScopeDefault
from aiohttp import web

from bot import gc_tuning
from bot.app import App, create_app, create_bot
from bot.staff_menu import set_staff_commands
from bot.registry import Registry
from bot.settings import Settings
from bot.web.app import TELEGRAM_WEBHOOK_PATH, create_web_app
from domain.users import DEFAULT_LANGUAGE, LANGUAGES

log = logging.getLogger("hybrid")

async def set_commands(bot: Bot, registry: Registry, app: App) -> None:
    """Telegram's command menu in every language, generated from the registry."""
    for language in LANGUAGES:
        commands = [
            BotCommand(command=c.name, description=app.i18n.gettext(c.description, locale=language)[:256])
            for c in registry.public()
        ]
        code = None if language == DEFAULT_LANGUAGE else language
        await bot.set_my_commands(commands, scope=BotCommandScopeDefault(), language_code=code)
    await set_staff_commands(bot, app)


async def run(settings: Settings, started: float | None = None) -> int:
    started = started if started is not None else time.perf_counter()
    if (problem := settings.start_problem("run")) is not None:  # bot/__main__.py asked already; callers in code
        print(problem)
        return 2
    webhook = settings.webhook_url is not None
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    app = await create_app(settings)
    bot = create_bot(settings)
    runner = web.AppRunner(create_web_app(app, bot, webhook_secret=secret, webhook=webhook), access_log=None)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    monitor: gc_tuning.GcMonitor | None = None
    try:
        me = await bot.get_me()
        await set_commands(bot, app.registry, app)
        await runner.setup()
        await web.TCPSite(runner, settings.web_host, settings.web_port).start()
        app.start_background(bot)
        monitor = gc_tuning.settle(app.metrics.registry)  # freeze start-up objects; the pause gauge
        allowed = app.dispatcher.resolve_used_update_types(skip_events={"aiogd_update"})
        if webhook:
            url = settings.webhook_url.rstrip("/") + TELEGRAM_WEBHOOK_PATH  # type: ignore[union-attr]
            await bot.set_webhook(url, secret_token=secret, allowed_updates=allowed)
            mode = "webhook"
        else:
            await bot.delete_webhook()
            mode = "polling"
        log.info(
            "Hybrid Trader ready as @%s (%s) on http://%s:%d in %.2fs",
            me.username, mode, settings.web_host, settings.web_port, time.perf_counter() - started,
        )  # fmt: skip
        if webhook:
            await stop.wait()
        else:
            await _poll_until(app.dispatcher, bot, allowed, stop)
    finally:
        if monitor is not None:
            monitor.close()
        log.info("shutting down")
        await runner.cleanup()
        await app.close()
        await bot.session.close()
    return 0


async def _poll_until(dp: Dispatcher, bot: Bot, allowed: list[str], stop: asyncio.Event) -> None:
    polling = asyncio.create_task(
        dp.start_polling(bot, allowed_updates=allowed, handle_signals=False, close_bot_session=False)
    )
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not polling.done():
        await dp.stop_polling()
    await polling
