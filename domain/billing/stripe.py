"""Stripe through the official SDK (async calls over aiohttp; STRIPE_API_BASE may point at a local server).

The SDK (and the requests stack under it) is imported by the first ``StripeGateway`` (``sdk()``): a
deployment without STRIPE_SECRET_KEY never loads it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

from domain.billing.model import PaymentProviderDown, Status

# Stripe's statuses onto ours; 'incomplete' grants nothing until the first invoice is paid.
_STATUS = {
    "trialing": Status.TRIALING,
    "active": Status.ACTIVE,
    "past_due": Status.PAST_DUE,
    "unpaid": Status.PAST_DUE,
    "canceled": Status.CANCELED,
    "incomplete_expired": Status.EXPIRED,
    "paused": Status.EXPIRED,
}


@dataclass(frozen=True, slots=True)
class StripeSubscription:
    id: str
    customer: str | None
    status: Status | None  # None: not yet in force (incomplete)
    tier: str | None
    user_id: int | None
    period_end: datetime | None
    cancel_at_period_end: bool


def _ts(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _get(obj: Any, key: str) -> Any:
    try:
        return obj[key]
    except (KeyError, TypeError, IndexError):
        return None


@functools.cache
def sdk() -> ModuleType:
    """The ``stripe`` package, imported once, when it is first needed."""
    import stripe

    return stripe


class StripeGateway:
    def __init__(self, secret_key: str, prices: dict[str, str], *, api_base: str | None = None) -> None:
        self._prices = {tier: price for tier, price in prices.items() if price}
        self._tiers = {price: tier for tier, price in self._prices.items()}
        self._sdk = stripe = sdk()
        self._http = stripe.AIOHTTPClient()
        base: dict[str, str] = {"api": api_base.rstrip("/")} if api_base else {}
        self._client = stripe.StripeClient(
            secret_key,
            http_client=self._http,
            base_addresses=base,
            max_network_retries=2,  # type: ignore[arg-type]
        )

    def sells(self, tier: str) -> bool:
        return tier in self._prices

    async def close(self) -> None:
        await self._http.close_async()

    async def price_matches(self, tier: str, cents: int) -> bool:
        """Whether Stripe's price for a tier charges what the tiers table says (USD per month)."""
        price = await self._call(self._client.v1.prices.retrieve_async, self._prices[tier])
        recurring = _get(price, "recurring") or {}
        return (
            _get(price, "unit_amount") == cents
            and str(_get(price, "currency")).lower() == "usd"
            and _get(recurring, "interval") == "month"
            and int(_get(recurring, "interval_count") or 1) == 1
        )

    async def checkout_url(self, *, user_id: int, tier: str, success_url: str, cancel_url: str) -> str:
        params: dict[str, Any] = {
            "mode": "subscription",
            "line_items": [{"price": self._prices[tier], "quantity": 1}],
            "client_reference_id": str(user_id),
            "metadata": {"telegram_id": str(user_id), "tier": tier},
            "subscription_data": {"metadata": {"telegram_id": str(user_id), "tier": tier}},
            "success_url": success_url,
            "cancel_url": cancel_url,
        }
        session = await self._call(self._client.v1.checkout.sessions.create_async, params)
        return str(session.url)

    async def portal_url(self, *, customer: str, return_url: str) -> str:
        session = await self._call(
            self._client.v1.billing_portal.sessions.create_async, {"customer": customer, "return_url": return_url}
        )
        return str(session.url)

    async def subscription(self, subscription_id: str) -> StripeSubscription:
        return self._parse(await self._call(self._client.v1.subscriptions.retrieve_async, subscription_id))

    async def set_cancel_at_period_end(self, subscription_id: str, cancel: bool) -> StripeSubscription:
        sub = await self._call(
            self._client.v1.subscriptions.update_async, subscription_id, {"cancel_at_period_end": cancel}
        )
        return self._parse(sub)

    async def meter_event(self, *, event_name: str, customer: str, value: int, identifier: str, at: datetime) -> None:
        await self._call(
            self._client.v1.billing.meter_events.create_async,
            {
                "event_name": event_name,
                "identifier": identifier,
                "timestamp": int(at.timestamp()),
                "payload": {"stripe_customer_id": customer, "value": str(value)},
            },
        )

    async def invoice_of_payment(self, payment_intent: str) -> str | None:
        """The invoice a PaymentIntent paid (a refunded or disputed charge names only its PaymentIntent)."""
        page = await self._call(
            self._client.v1.invoice_payments.list_async,
            {"payment": {"type": "payment_intent", "payment_intent": payment_intent}, "limit": 1},
        )
        data = _get(page, "data") or []
        invoice = _get(data[0], "invoice") if data else None
        if invoice is not None and not isinstance(invoice, str):
            invoice = _get(invoice, "id")
        return str(invoice) if invoice else None

    async def _call(self, method: Any, *args: Any) -> Any:
        try:
            return await method(*args)
        except self._sdk.StripeError as exc:
            raise PaymentProviderDown(str(exc)) from exc

    def _parse(self, sub: Any) -> StripeSubscription:
        items = _get(_get(sub, "items"), "data") or []
        item = items[0] if items else None
        price = _get(_get(item, "price"), "id")
        metadata = _get(sub, "metadata") or {}
        tier = self._tiers.get(price) if price else None
        raw_user = _get(metadata, "telegram_id")
        period_end = _get(item, "current_period_end") or _get(sub, "current_period_end")
        customer = _get(sub, "customer")
        return StripeSubscription(
            id=str(sub["id"]),
            customer=str(customer) if customer else None,
            status=_STATUS.get(str(_get(sub, "status"))),
            tier=tier or _get(metadata, "tier"),
            user_id=int(raw_user) if raw_user and str(raw_user).isdigit() else None,
            period_end=_ts(period_end),
            cancel_at_period_end=bool(_get(sub, "cancel_at_period_end")),
        )
