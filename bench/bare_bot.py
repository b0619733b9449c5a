"""The baseline of the benches: a bare aiogram bot, nothing of ours.

    BOT_TOKEN=... TELEGRAM_API_URL=... WEB_PORT=... [WEBHOOK_URL=... WEBHOOK_SECRET=...] python bench/bare_bot.py

The same parts as the product: aiogram's Bot and Dispatcher, an aiohttp server with
``/healthz`` (answering once the bot is about to poll or has set its webhook) and, with
WEBHOOK_URL, SimpleRequestHandler at ``/webhooks/telegram`` in the foreground; long
polling otherwise. One reply per update: a message is answered with a message, a
button press with answerCallbackQuery. bench/updates.py drives :func:`make_dispatcher`
in process; bench/load.py and bench/startup.py run this file.
"""

import asyncio
import os

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import CallbackQuery, Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web


def make_dispatcher() -> Dispatcher:
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer("ok")

    @dp.callback_query()
    async def press(query: CallbackQuery) -> None:
        await query.answer()

    return dp


async def main() -> None:
    api = TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"])
    bot = Bot(os.environ["BOT_TOKEN"], session=AiohttpSession(api=api))
    dp = make_dispatcher()
    app = web.Application()
    app.router.add_get("/healthz", lambda _r: web.json_response({"status": "ok"}))
    webhook, secret = os.environ.get("WEBHOOK_URL"), os.environ.get("WEBHOOK_SECRET", "")
    if webhook:
        handler = SimpleRequestHandler(dp, bot, secret_token=secret, handle_in_background=False)
        handler.register(app, path="/webhooks/telegram")
    await bot.get_me()
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["WEB_PORT"])).start()
    if webhook:
        await bot.set_webhook(webhook + "/webhooks/telegram", secret_token=secret)
        await asyncio.Event().wait()
    await bot.delete_webhook()
    await dp.start_polling(bot)


if __name__ == "__main__":
    asyncio.run(main())
