"""Routes: ``POST /webhooks/telegram`` (webhook mode) and ``GET /healthz``."""

from __future__ import annotations

import hmac

from aiogram import Bot
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot import __version__
from bot.app import App
from bot.web.miniapp import install as install_miniapp
from bot.web.pay import install as install_card_page
from bot.web.stripe import STRIPE_WEBHOOK_PATH, stripe_webhook

TELEGRAM_WEBHOOK_PATH = "/webhooks/telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


class WebhookSecretMissing(ValueError):
    """Webhook mode without WEBHOOK_SECRET: anyone could post updates as any user (an admin's /grant)."""


class VerifiedRequestHandler(SimpleRequestHandler):
    """aiogram's webhook handler, refusing any update without Telegram's secret header.

    The comparison is constant-time over bytes: aiogram's own compares ``str`` and raises
    TypeError (a 500) on a non-ASCII header.
    """

    def __init__(self, *args: object, secret_token: str, **kwargs: object) -> None:
        if not secret_token:
            raise WebhookSecretMissing("webhook mode needs WEBHOOK_SECRET")
        super().__init__(*args, secret_token=secret_token, **kwargs)  # type: ignore[arg-type]
        self._expected = secret_token.encode()

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        received = (telegram_secret_token or "").encode("utf-8", "surrogateescape")
        return hmac.compare_digest(received, self._expected)


def create_web_app(app: App, bot: Bot, *, webhook_secret: str | None = None, webhook: bool = False) -> web.Application:
    web_app = web.Application(client_max_size=1024 * 1024)

    async def healthz(_request: web.Request) -> web.Response:
        probes = await app.health.check()
        healthy = all(p.ok for p in probes)
        body = {
            "status": "ok" if healthy else "degraded",
            "version": __version__,
            "uptime_s": round(app.health.uptime, 1),
            "components": {p.name: {"ok": p.ok, "detail": p.detail} for p in probes},
        }
        return web.json_response(body, status=200 if healthy else 503)

    async def metrics(_request: web.Request) -> web.Response:
        app.metrics.usage_pending.set(app.meter.pending)
        await app.ops.figures()  # refreshes the gauges /status and /admin read too
        return web.Response(body=app.metrics.render(), content_type="text/plain", charset="utf-8")

    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_post(STRIPE_WEBHOOK_PATH, stripe_webhook(app, bot))
    web_app.router.add_get("/metrics", metrics)
    install_miniapp(web_app, app, bot.token)  # the Mini App: /app/, /api/, /app/ws
    install_card_page(web_app, app, bot)  # consumers' card checkout, off the chat: /pay/ (404 unless switched on)
    if webhook:
        # In the foreground: Telegram gets 200 only after the update was handled,
        # so a crash mid-update means redelivery, not a lost message.
        handler = VerifiedRequestHandler(
            app.dispatcher, bot, secret_token=webhook_secret or "", handle_in_background=False
        )
        handler.register(web_app, path=TELEGRAM_WEBHOOK_PATH)
    return web_app
