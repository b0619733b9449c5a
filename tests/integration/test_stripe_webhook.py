"""POST /webhooks/stripe on the real aiohttp app: signatures, exactly-once effects, out-of-order delivery."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from collections.abc import AsyncIterator

import pytest
import stripe
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.settings import Settings
from bot.web.app import create_web_app
from domain.db.models import AuditRow, PaymentRow, StripeEventRow, SubscriptionRow
from tests.fakes.stripe import WEBHOOK_SECRET, FakeStripe, stripe_settings
from tests.fakes.telegram import FakeTelegram
from tests.harness import Harness, build_harness


@pytest.fixture
async def env(
    stack: Settings, telegram: FakeTelegram, fake_stripe: FakeStripe
) -> AsyncIterator[tuple[Harness, TestClient]]:  # type: ignore[type-arg]
    h = await build_harness(stripe_settings(stack, fake_stripe), telegram)
    await h.send("/start", user=1001)
    async with TestClient(TestServer(create_web_app(h.app, h.bot), host="127.0.0.1")) as client:
        yield h, client
    await h.close()


async def _count(h: Harness, model: type, *where: object) -> int:
    async with h.app.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _post(client: TestClient, body: str, signature: str | None) -> int:  # type: ignore[type-arg]
    headers = {"Stripe-Signature": signature} if signature is not None else {}
    return (await client.post("/webhooks/stripe", data=body, headers=headers)).status


async def test_same_event_three_times_has_one_effect(env: tuple[Harness, TestClient], fake_stripe: FakeStripe) -> None:  # type: ignore[type-arg]
    h, client = env
    fake_stripe.put_subscription("sub_r", user_id=1001, tier="pro")
    invoice = {"id": "in_r", "object": "invoice", "subscription": "sub_r", "amount_paid": 2999, "currency": "usd"}
    body = fake_stripe.event("invoice.paid", invoice, event_id="evt_replayed")
    before = len(h.telegram.sent())
    for _ in range(3):
        assert await _post(client, body, fake_stripe.sign(body)) == 200
    await h.app.drain_outbox(h.bot)  # notices go through the notification outbox
    assert await _count(h, PaymentRow) == 1
    assert await _count(h, SubscriptionRow) == 1
    assert await _count(h, StripeEventRow) == 1
    assert await _count(h, AuditRow, AuditRow.action == "billing.stripe_event") == 1
    assert len(h.telegram.sent()) - before == 1  # told once
    assert (await h.stored_user(1001)).tier == "pro"  # type: ignore[union-attr]


async def test_updated_before_created_ends_in_stripes_current_state(
    env: tuple[Harness, TestClient], fake_stripe: FakeStripe
) -> None:  # type: ignore[type-arg]
    h, client = env
    fake_stripe.put_subscription("sub_o", user_id=1001, tier="basic", status="active")
    fake_stripe.subscriptions["sub_o"]["cancel_at_period_end"] = True  # the latest state Stripe holds
    stale_created = {"id": "sub_o", "object": "subscription", "status": "incomplete", "cancel_at_period_end": False}
    updated = fake_stripe.event(
        "customer.subscription.updated", {"id": "sub_o", "object": "subscription", "status": "active"}
    )
    created = fake_stripe.event("customer.subscription.created", stale_created)
    assert await _post(client, updated, fake_stripe.sign(updated)) == 200
    assert await _post(client, created, fake_stripe.sign(created)) == 200  # late and stale: no regression
    async with h.app.sessionmaker() as session:
        row = (await session.scalars(select(SubscriptionRow))).one()
    assert (row.status, row.tier, row.cancel_at_period_end) == ("active", "basic", True)
    assert (await h.stored_user(1001)).tier == "basic"  # type: ignore[union-attr]
    # deleted arrives, then a stale updated: still canceled
    fake_stripe.subscriptions["sub_o"]["status"] = "canceled"
    deleted = fake_stripe.event("customer.subscription.deleted", {"id": "sub_o", "object": "subscription"})
    late = fake_stripe.event(
        "customer.subscription.updated", {"id": "sub_o", "object": "subscription", "status": "active"}
    )
    assert await _post(client, deleted, fake_stripe.sign(deleted)) == 200
    assert await _post(client, late, fake_stripe.sign(late)) == 200
    assert (await h.stored_user(1001)).tier == "free"  # type: ignore[union-attr]


async def test_forged_and_tampered_webhooks_change_nothing(
    env: tuple[Harness, TestClient], fake_stripe: FakeStripe
) -> None:  # type: ignore[type-arg]
    h, client = env
    fake_stripe.put_subscription("sub_f", user_id=1001, tier="enterprise")
    body = fake_stripe.event(
        "checkout.session.completed", {"id": "cs_f", "client_reference_id": "1001", "subscription": "sub_f"}
    )
    assert await _post(client, body, None) == 400
    assert await _post(client, body, fake_stripe.sign(body, secret="whsec_attacker")) == 400
    tampered = json.loads(body)
    tampered["data"]["object"]["client_reference_id"] = "1002"
    assert await _post(client, json.dumps(tampered), fake_stripe.sign(body)) == 400
    assert await _post(client, body, "t=1,v1=deadbeef") == 400
    assert await _count(h, StripeEventRow) == 0 and await _count(h, SubscriptionRow) == 0
    assert not fake_stripe.made("/v1/subscriptions/sub_f")
    assert (await h.stored_user(1001)).tier == "free"  # type: ignore[union-attr]
    assert await _post(client, body, fake_stripe.sign(body)) == 200  # the genuine one still works
    assert (await h.stored_user(1001)).tier == "enterprise"  # type: ignore[union-attr]


async def test_unsigned_replayed_and_non_ascii_signatures_are_refused(
    env: tuple[Harness, TestClient], fake_stripe: FakeStripe
) -> None:  # type: ignore[type-arg]
    h, client = env
    fake_stripe.put_subscription("sub_r", user_id=1001, tier="pro")
    body = fake_stripe.event(
        "checkout.session.completed", {"id": "cs_r", "client_reference_id": "1001", "subscription": "sub_r"}
    )
    old = stripe.WebhookSignature.generate_signature_header(body, WEBHOOK_SECRET, timestamp=int(time.time()) - 3600)
    genuine = fake_stripe.sign(body)
    foreign = genuine.replace("v1=", "v1=é").encode().decode("latin-1")  # non-ASCII bytes on the wire
    for signature in (None, "", old, foreign):
        assert await _post(client, body, signature) == 400, signature
    assert await _count(h, StripeEventRow) == 0 and (await h.stored_user(1001)).tier == "free"  # type: ignore[union-attr]
    assert await _post(client, body, genuine) == 200


async def test_stripe_outage_defers_the_event_for_a_retry(
    env: tuple[Harness, TestClient], fake_stripe: FakeStripe
) -> None:  # type: ignore[type-arg]
    h, client = env
    fake_stripe.put_subscription("sub_d", user_id=1001, tier="pro")
    fake_stripe.fail_next = 5
    body = fake_stripe.event("customer.subscription.created", {"id": "sub_d"}, event_id="evt_retry")
    assert await _post(client, body, fake_stripe.sign(body)) == 503
    assert await _count(h, StripeEventRow) == 0  # not marked processed: Stripe's retry will apply it
    fake_stripe.fail_next = 0
    assert await _post(client, body, fake_stripe.sign(body)) == 200
    assert (await h.stored_user(1001)).tier == "pro"  # type: ignore[union-attr]


async def test_stripe_trial_reminder_and_renewal_tell_the_user(
    env: tuple[Harness, TestClient], fake_stripe: FakeStripe
) -> None:  # type: ignore[type-arg]
    h, client = env
    fake_stripe.put_subscription("sub_t", user_id=1001, tier="pro", status="trialing")

    async def deliver(event_type: str, obj: dict) -> list[str]:  # type: ignore[type-arg]
        before = len(h.telegram.sent())
        body = fake_stripe.event(event_type, obj)
        assert await _post(client, body, fake_stripe.sign(body)) == 200
        await h.app.drain_outbox(h.bot)  # notices go through the notification outbox
        return [c.text for c in h.telegram.sent()[before:]]

    assert "trial is on" in " ".join(await deliver("customer.subscription.created", {"id": "sub_t"}))
    assert "trial ends on" in " ".join(await deliver("customer.subscription.trial_will_end", {"id": "sub_t"}))
    fake_stripe.subscriptions["sub_t"]["status"] = "active"
    first = {
        "id": "in_t1",
        "subscription": "sub_t",
        "amount_paid": 2999,
        "currency": "usd",
        "billing_reason": "subscription_cycle",
    }
    texts = await deliver("invoice.paid", first)
    assert any("Payment received" in t for t in texts) and any("renewed until" in t for t in texts)
    assert (await h.stored_user(1001)).tier == "pro"  # type: ignore[union-attr]


async def test_a_lost_renewal_webhook_does_not_cost_the_plan(
    env: tuple[Harness, TestClient], fake_stripe: FakeStripe
) -> None:  # type: ignore[type-arg]
    h, client = env
    end = int(time.time()) + 86400
    fake_stripe.put_subscription("sub_l", user_id=1001, tier="pro", period_end=end)
    body = fake_stripe.event("customer.subscription.created", {"id": "sub_l"})
    assert await _post(client, body, fake_stripe.sign(body)) == 200
    fake_stripe.put_subscription("sub_l", user_id=1001, tier="pro", period_end=end + 30 * 86400)  # renewed, unannounced
    later = datetime.fromtimestamp(end, UTC) + timedelta(days=2)
    assert await h.app.billing.run_due_jobs(later) == []
    async with h.app.sessionmaker() as session:
        row = (await session.scalars(select(SubscriptionRow))).one()
    assert row.status == "active" and row.current_period_end == datetime.fromtimestamp(end + 30 * 86400, UTC)
    assert (await h.stored_user(1001)).tier == "pro"  # type: ignore[union-attr]
