"""A stand-in for Stripe's API on loopback, speaking its JSON (form-encoded requests, JSON answers).

The product reaches it through the official SDK (STRIPE_API_BASE). It keeps
subscriptions the tests put in it, records every call, answers the endpoints
billing uses, and signs webhook events the way Stripe does.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import stripe
from aiohttp import web

from tests.fakes import serve_on_loopback

SECRET_KEY = "sk_test_loopback"
WEBHOOK_SECRET = "whsec_test_loopback"
PRICES = {"basic": "price_basic", "pro": "price_pro", "enterprise": "price_enterprise"}
PRICE_TIERS = {v: k for k, v in PRICES.items()}
PRICE_CENTS = {"basic": 999, "pro": 2999, "enterprise": 9999}  # as configured in the Stripe dashboard


@dataclass
class StripeCall:
    method: str
    path: str
    params: dict[str, Any]


@dataclass
class FakeStripe:
    calls: list[StripeCall] = field(default_factory=list)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    meter_events: dict[str, dict[str, Any]] = field(default_factory=dict)
    amounts: dict[str, int] = field(default_factory=dict)  # price id -> unit_amount override
    invoice_payments: dict[str, str] = field(default_factory=dict)  # PaymentIntent id -> the invoice it paid
    fail_next: int = 0
    url: str = ""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _runner: web.AppRunner | None = None

    async def start(self) -> FakeStripe:
        app = web.Application()
        app.router.add_post("/v1/checkout/sessions", self._checkout)
        app.router.add_post("/v1/billing_portal/sessions", self._portal)
        app.router.add_get("/v1/prices/{id}", self._get_price)
        app.router.add_get("/v1/subscriptions/{id}", self._get_subscription)
        app.router.add_post("/v1/subscriptions/{id}", self._update_subscription)
        app.router.add_post("/v1/billing/meter_events", self._meter_event)
        app.router.add_get("/v1/invoice_payments", self._list_invoice_payments)
        self._runner, self.url = await serve_on_loopback(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- test helpers ---

    def put_subscription(
        self,
        sub_id: str,
        *,
        user_id: int,
        tier: str = "pro",
        status: str = "active",
        customer: str = "cus_1",
        period_end: int | None = None,
        cancel_at_period_end: bool = False,
    ) -> dict[str, Any]:
        end = period_end or int(time.time()) + 30 * 86400
        sub = {
            "id": sub_id,
            "object": "subscription",
            "customer": customer,
            "status": status,
            "cancel_at_period_end": cancel_at_period_end,
            "metadata": {"telegram_id": str(user_id), "tier": tier},
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": f"si_{sub_id}",
                        "object": "subscription_item",
                        "current_period_end": end,
                        "price": {"id": PRICES[tier], "object": "price"},
                    }
                ],
            },
        }
        self.subscriptions[sub_id] = sub
        return sub

    def event(self, event_type: str, obj: dict[str, Any], event_id: str | None = None) -> str:
        """A webhook body, as Stripe would post it."""
        body = {
            "id": event_id or f"evt_{next(self._ids)}",
            "object": "event",
            "api_version": stripe.api_version,
            "created": int(time.time()),
            "type": event_type,
            "livemode": False,
            "data": {"object": obj},
        }
        return json.dumps(body)

    @staticmethod
    def sign(payload: str, secret: str = WEBHOOK_SECRET) -> str:
        return stripe.WebhookSignature.generate_signature_header(payload, secret)

    def made(self, path: str) -> list[StripeCall]:
        return [c for c in self.calls if c.path == path]

    # --- endpoints ---

    async def _record(self, request: web.Request) -> dict[str, Any] | web.Response:
        if request.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
            return _error(401, "invalid_request_error", "Invalid API Key provided")
        params = dict((await request.post()).items()) if request.method == "POST" else dict(request.query)
        self.calls.append(StripeCall(request.method, request.path, params))
        if self.fail_next > 0:
            self.fail_next -= 1
            return _error(500, "api_error", "Something went wrong on Stripe's end")
        return params

    async def _checkout(self, request: web.Request) -> web.Response:
        params = await self._record(request)
        if isinstance(params, web.Response):
            return params
        if params.get("line_items[0][price]") not in PRICE_TIERS:
            return _error(400, "invalid_request_error", "No such price")
        session_id = f"cs_test_{next(self._ids)}"
        return web.json_response(
            {
                "id": session_id,
                "object": "checkout.session",
                "mode": params.get("mode"),
                "client_reference_id": params.get("client_reference_id"),
                "url": f"https://checkout.stripe.com/c/pay/{session_id}",
            }
        )

    async def _portal(self, request: web.Request) -> web.Response:
        params = await self._record(request)
        if isinstance(params, web.Response):
            return params
        return web.json_response(
            {
                "id": f"bps_{next(self._ids)}",
                "object": "billing_portal.session",
                "customer": params.get("customer"),
                "url": f"https://billing.stripe.com/p/session/test_{params.get('customer')}",
            }
        )

    async def _get_price(self, request: web.Request) -> web.Response:
        params = await self._record(request)
        if isinstance(params, web.Response):
            return params
        price_id = request.match_info["id"]
        if price_id not in PRICE_TIERS:
            return _error(404, "invalid_request_error", "No such price", code="resource_missing")
        return web.json_response(
            {
                "id": price_id,
                "object": "price",
                "currency": "usd",
                "unit_amount": self.amounts.get(price_id, PRICE_CENTS[PRICE_TIERS[price_id]]),
                "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
                "type": "recurring",
            }
        )

    async def _get_subscription(self, request: web.Request) -> web.Response:
        params = await self._record(request)
        if isinstance(params, web.Response):
            return params
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None:
            return _error(404, "invalid_request_error", "No such subscription", code="resource_missing")
        return web.json_response(sub)

    async def _update_subscription(self, request: web.Request) -> web.Response:
        params = await self._record(request)
        if isinstance(params, web.Response):
            return params
        sub = self.subscriptions.get(request.match_info["id"])
        if sub is None:
            return _error(404, "invalid_request_error", "No such subscription", code="resource_missing")
        if "cancel_at_period_end" in params:
            sub["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
        return web.json_response(sub)

    async def _list_invoice_payments(self, request: web.Request) -> web.Response:
        params = await self._record(request)
        if isinstance(params, web.Response):
            return params
        intent = params.get("payment[payment_intent]")
        invoice = self.invoice_payments.get(str(intent))
        data = [] if invoice is None else [{
            "id": f"inpay_{intent}", "object": "invoice_payment", "invoice": invoice, "is_default": True,
            "status": "paid", "payment": {"type": "payment_intent", "payment_intent": intent},
        }]  # fmt: skip
        return web.json_response({"object": "list", "data": data, "has_more": False, "url": "/v1/invoice_payments"})

    async def _meter_event(self, request: web.Request) -> web.Response:
        params = await self._record(request)
        if isinstance(params, web.Response):
            return params
        identifier = str(params.get("identifier"))
        event = {
            "object": "billing.meter_event",
            "event_name": params.get("event_name"),
            "identifier": identifier,
            "payload": {
                "stripe_customer_id": params.get("payload[stripe_customer_id]"),
                "value": params.get("payload[value]"),
            },
            "timestamp": int(params.get("timestamp") or 0),
            "livemode": False,
        }
        self.meter_events.setdefault(identifier, event)  # Stripe de-duplicates by identifier
        return web.json_response(event)


def _error(status: int, kind: str, message: str, code: str | None = None) -> web.Response:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return web.json_response({"error": error}, status=status)


def stripe_settings(settings: Any, fake: FakeStripe, **extra: Any) -> Any:
    """The given Settings with Stripe pointed at the fake."""
    from pydantic import SecretStr

    return settings.model_copy(
        update={
            "stripe_secret_key": SecretStr(SECRET_KEY),
            "stripe_webhook_secret": SecretStr(WEBHOOK_SECRET),
            "stripe_api_base": fake.url,
            "stripe_price_basic": PRICES["basic"],
            "stripe_price_pro": PRICES["pro"],
            "stripe_price_enterprise": PRICES["enterprise"],
            **extra,
        }
    )
