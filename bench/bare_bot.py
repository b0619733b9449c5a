"""The baseline of bench/load.py: a bare aiogram bot in webhook mode, nothing of ours.

    BOT_TOKEN=... TELEGRAM_API_URL=... WEB_PORT=... WEBHOOK_SECRET=... python bench/bare_bot.py

Same server and handler as the product (aiohttp, SimpleRequestHandler, in the foreground), one reply
per update (a message is answered with a message, a button press with answerCallbackQuery).
"""

import os

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import CallbackQuery, Message
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

dp = Dispatcher()


@dp.message()
async def echo(message: Message) -> None:
    await message.answer("ok")


@dp.callback_query()
async def press(query: CallbackQuery) -> None:
    await query.answer()


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


if __name__ == "__main__":
    api = TelegramAPIServer.from_base(os.environ["TELEGRAM_API_URL"])
    bot = Bot(os.environ["BOT_TOKEN"], session=AiohttpSession(api=api))
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    SimpleRequestHandler(dp, bot, secret_token=os.environ["WEBHOOK_SECRET"], handle_in_background=False).register(
        app, path="/webhooks/telegram"
    )
    web.run_app(app, host="127.0.0.1", port=int(os.environ["WEB_PORT"]), print=None, access_log=None)
