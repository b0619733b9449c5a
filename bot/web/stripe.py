"""``POST /webhooks/stripe``: verified with the SDK, applied once by billing, the user told in the chat."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiogram import Bot
from aiohttp import web

from domain.billing.stripe import sdk
from domain.errors import DomainError

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

STRIPE_WEBHOOK_PATH = "/webhooks/stripe"
MAX_BODY = 512 * 1024
TOLERANCE = 300  # seconds: an older signed event is refused (Stripe's own default, kept explicit)


def stripe_webhook(app: App, bot: Bot) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        secret = app.settings.stripe_webhook_secret
        if secret is None or app.billing.stripe is None:
            raise web.HTTPNotFound()
        payload = await request.read()
        if len(payload) > MAX_BODY:
            return web.json_response({"error": "too large"}, status=413)
        signature = request.headers.get("Stripe-Signature") or ""
        stripe = sdk()  # loaded already: app.billing.stripe is a StripeGateway
        try:
            if not signature.isascii():  # the SDK's compare_digest raises TypeError (a 500) on a non-ASCII str
                raise ValueError("non-ASCII signature header")
            # the SDK compares in constant time and refuses a signature older than TOLERANCE (a replay)
            event = stripe.Webhook.construct_event(
                payload.decode("utf-8"), signature, secret.get_secret_value(), tolerance=TOLERANCE
            )
        except (ValueError, UnicodeDecodeError, stripe.SignatureVerificationError):
            log.warning("rejected a Stripe webhook with a bad signature or body")
            return web.json_response({"error": "invalid signature"}, status=400)
        try:
            await app.billing.handle_stripe_event(event)  # notices are queued in the event's transaction
        except DomainError:  # Stripe's API did not answer: nothing stored, Stripe retries the event
            log.warning("Stripe event %s deferred", event["id"], exc_info=True)
            return web.json_response({"error": "retry later"}, status=503)
        return web.json_response({"received": True})

    return handle
