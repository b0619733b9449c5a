"""Billing from the chat: trial, Stars, Stripe (checkout + signed webhook), cancel, dunning, refunds, referrals."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.settings import Settings
from bot.web.app import create_web_app
from domain.db.uow import UnitOfWork
from domain.db.models import AuditRow, PaymentRow, ReferralRewardRow, SubscriptionRow
from tests.fakes.stripe import FakeStripe, stripe_settings
from tests.fakes.telegram import FakeTelegram
from tests.harness import Harness, build_harness

STAFF = 9000
WEB = "https://bot.example.com"
PAID = {"en": "Payment received: you're on Pro", "ru": "Оплата получена: у вас Про"}
RENEWED = {"en": "Pro renewed until", "ru": "Про продлён до"}


@pytest.fixture
async def bh(stack: Settings, telegram: FakeTelegram, fake_stripe: FakeStripe) -> AsyncIterator[Harness]:
    h = await build_harness(stripe_settings(stack, fake_stripe, admin_ids=frozenset({STAFF})), telegram)
    yield h
    await h.close()


@pytest.fixture
async def card_bh(stack: Settings, telegram: FakeTelegram, fake_stripe: FakeStripe) -> AsyncIterator[Harness]:
    """The operator switched consumer card checkout on: it lives on the web page, never in the chat."""
    settings = stripe_settings(stack, fake_stripe, consumer_card_checkout="web", web_public_url=WEB)
    h = await build_harness(settings, telegram)
    yield h
    await h.close()


def _urls(markup: dict | None) -> list[str]:  # type: ignore[type-arg]
    return [b["url"] for row in (markup or {}).get("inline_keyboard", []) for b in row if "url" in b]


async def _count(h: Harness, model: type, *where: object) -> int:
    async with h.app.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _texts(calls: list) -> str:  # type: ignore[type-arg]
    return "\n".join(c.text for c in calls)


async def _invoice(h: Harness, tier: str = "pro", user: int = 1001) -> tuple[str, int]:
    calls = await h.press(f"bill:stars:{tier}:0", user=user)
    link = next(c for c in calls if c.method == "createInvoiceLink")
    return link.params["payload"], int(link.params["prices"][0]["amount"])


async def test_free_user_starts_a_trial_once_and_the_plan_opens_at_once(bh: Harness) -> None:
    await bh.send("/start")
    premium = (await bh.send("/premium"))[0]
    assert "Premium" in premium.text and "AI analyses today: 0 of 3 on Free" in premium.text
    assert ("🎁 Try Pro free for 7 days", "bill:trial::0") in premium.buttons
    told = await bh.press("bill:trial::0")
    assert "Your Pro trial is on until" in _texts(told)
    user = await bh.stored_user(1001)
    assert user is not None and user.tier == "pro" and user.tier_expires_at is not None
    assert "AI analyses today: 0 / 200" in (await bh.send("/status"))[0].text  # no 30 s cache delay
    sub = (await bh.send("/subscription"))[0].text
    assert "Plan: <b>Pro</b>" in sub and "trial" in sub and "free trial" in sub
    again = await bh.press("bill:trial::0")
    assert "already used your free trial" in _texts(again)
    assert await _count(bh, SubscriptionRow, SubscriptionRow.rail == "trial") == 1
    # the trial ends: reminded first, then back to Free with a message
    end = user.tier_expires_at
    assert [n.kind for n in await bh.app.billing.run_due_jobs(end - timedelta(days=1))] == ["trial_ending"]
    assert await bh.app.billing.run_due_jobs(end - timedelta(hours=1)) == []  # reminded once
    notices = await bh.app.billing.run_due_jobs(end + timedelta(minutes=1))
    assert [n.kind for n in notices] == ["downgraded"]
    assert (await bh.stored_user(1001)).tier == "free"  # type: ignore[union-attr]


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_stars_subscription_pay_renew_cancel_and_staff_refund(bh: Harness, lang: str) -> None:
    await bh.send("/start", lang=lang)
    calls = await bh.press("bill:stars:pro:0", lang=lang)
    link = next(c for c in calls if c.method == "createInvoiceLink")
    assert link.params["currency"] == "XTR" and int(link.params["subscription_period"]) == 2592000
    assert int(link.params["prices"][0]["amount"]) == 1500  # from the tiers table
    shown = next(c for c in calls if c.method == "editMessageText")
    assert shown.params["reply_markup"]["inline_keyboard"][0][0]["url"].startswith("https://t.me/$invoice")
    payload = link.params["payload"]

    ok = (await bh.pre_checkout(payload, 1500, lang=lang))[0]
    assert ok.method == "answerPreCheckoutQuery" and ok.params["ok"] in (True, "true")
    forged = payload.replace(".1500.", ".1.")
    bad = (await bh.pre_checkout(forged, 1, lang=lang))[0]
    assert bad.params["ok"] in (False, "false") and bad.params["error_message"]
    assert (await bh.pre_checkout(payload, 1500, user=1002))[0].params["ok"] in (
        False,
        "false",
    )  # someone else's invoice
    assert (await bh.pre_checkout(payload, 15, lang=lang))[0].params["ok"] in (False, "false")  # price mismatch
    if lang == "ru":
        assert "счёт" in bad.params["error_message"].lower() or "счет" in bad.params["error_message"].lower()

    expires = int(time.time()) + 30 * 86400
    paid = await bh.pay(
        payload, 1500, charge_id="ch_1", lang=lang, recurring=True, first_recurring=True, expires=expires
    )
    assert len(paid) == 1 and PAID[lang] in paid[0].text
    assert (await bh.stored_user(1001)).tier == "pro"  # type: ignore[union-attr]
    assert await bh.pay(payload, 1500, charge_id="ch_1", lang=lang, recurring=True, first_recurring=True) == []
    assert await _count(bh, PaymentRow) == 1

    renewed = await bh.pay(payload, 1500, charge_id="ch_2", lang=lang, recurring=True, expires=expires + 30 * 86400)
    renewed_until = datetime.fromtimestamp(expires + 30 * 86400, UTC).strftime("%Y-%m-%d")
    assert len(renewed) == 1 and RENEWED[lang] in renewed[0].text and renewed_until in renewed[0].text
    async with bh.app.sessionmaker() as session:
        row = (await session.scalars(select(SubscriptionRow).where(SubscriptionRow.rail == "stars"))).one()
    assert row.current_period_end == datetime.fromtimestamp(expires + 30 * 86400, UTC)
    assert await _count(bh, SubscriptionRow) == 1

    billing = (await bh.send("/billing", lang=lang))[0]
    assert "ch_1" in billing.text and "ch_2" in billing.text
    cancel = next(data for _, data in billing.buttons if data and data.startswith("bill:cancel:"))
    await bh.press(cancel, lang=lang)
    done = await bh.press(cancel.replace("bill:cancel:", "bill:cancelok:"), lang=lang)
    edit = next(c for c in done if c.method == "editUserStarSubscription")
    assert edit.params["telegram_payment_charge_id"] == "ch_1" and edit.params["is_canceled"] in (True, "true")
    # someone else's button changes nothing
    other = await bh.press(cancel.replace("bill:cancel:", "bill:resume:"), user=1002)
    assert not [c for c in other if c.method == "editUserStarSubscription"]

    # refunds are staff-only and invisible to others
    sneaky = await bh.send("/refund ch_2", user=1002)
    assert "don't know the command" in sneaky[0].text or "не знаю" in sneaky[0].text.lower()
    assert "/refund" not in (await bh.send("/help", user=1002))[0].text
    staff = await bh.send("/refund ch_1", user=STAFF)
    refund = next(c for c in staff if c.method == "refundStarPayment")
    assert int(refund.params["user_id"]) == 1001 and refund.params["telegram_payment_charge_id"] == "ch_1"
    assert (await bh.stored_user(1001)).tier == "free"  # type: ignore[union-attr]
    assert any(int(c.params["chat_id"]) == 1001 for c in staff if c.method == "sendMessage")
    assert await _count(bh, AuditRow, AuditRow.action == "billing.refunded") == 1
    # Telegram's refunded_payment echo is idempotent
    assert await bh.refunded(payload, 1500, charge_id="ch_1") == []


async def test_stars_pack_adds_credits(bh: Harness) -> None:
    await bh.send("/start")
    assert not any(data == "bill:pack::0" for _, data in (await bh.send("/premium"))[0].buttons)
    assert "isn't on sale" in _texts(await bh.press("bill:pack::0"))  # nothing spends credits yet: not sold
    bh.app.billing.enable_packs()
    assert any(data == "bill:pack::0" for _, data in (await bh.send("/premium"))[0].buttons)
    calls = await bh.press("bill:pack::0")
    link = next(c for c in calls if c.method == "createInvoiceLink")
    assert "subscription_period" not in link.params or link.params["subscription_period"] is None
    payload, amount = link.params["payload"], int(link.params["prices"][0]["amount"])
    assert (await bh.pre_checkout(payload, amount))[0].params["ok"] in (True, "true")
    told = await bh.pay(payload, amount, charge_id="pack_1")
    assert "50 AI analyses added" in told[0].text
    assert "Extra AI analyses from packs: 50" in (await bh.send("/subscription"))[0].text
    async with UnitOfWork(bh.app.sessionmaker) as uow:
        assert await bh.app.billing.use_credit(uow, 1001) is True
        await uow.commit()
    assert "Extra AI analyses from packs: 49" in (await bh.send("/subscription"))[0].text


async def test_stripe_checkout_then_signed_webhook_then_failed_payment_and_grace(
    card_bh: Harness, fake_stripe: FakeStripe
) -> None:
    bh = card_bh
    await bh.send("/start")
    premium = (await bh.send("/premium"))[0]
    assert not any(data and data.startswith("bill:card") for _, data in premium.buttons)  # no card button in chat
    links = _urls(premium.params.get("reply_markup"))
    page = next(u for u in links if u.startswith(f"{WEB}/pay/?t="))
    assert not any("stripe" in u for u in links) and "stripe.com" not in premium.text
    assert fake_stripe.made("/v1/checkout/sessions") == []  # nothing at Stripe until the user acts on the page
    token = page.split("?t=", 1)[1]
    web = create_web_app(bh.app, bh.bot)
    async with TestClient(TestServer(web, host="127.0.0.1")) as client:
        shown = await client.get("/pay/", params={"t": token})
        body = await shown.text()
        assert shown.status == 200 and "Pay $29.99 a month by card" in body and "stripe.com" not in body
        assert (await client.get("/pay/", params={"t": token + "x"})).status == 401  # forged token
        chosen = await client.post("/pay/checkout", data={"t": token, "tier": "pro"}, allow_redirects=False)
        assert chosen.status == 303 and chosen.headers["Location"].startswith("https://checkout.stripe.com/")
    session = fake_stripe.made("/v1/checkout/sessions")[0].params
    assert session["mode"] == "subscription" and session["client_reference_id"] == "1001"
    assert session["subscription_data[metadata][telegram_id]"] == "1001"
    assert session["line_items[0][price]"] == "price_pro"
    fake_stripe.amounts["price_basic"] = 500  # Stripe disagrees with the tiers table: not sold
    async with TestClient(TestServer(create_web_app(bh.app, bh.bot), host="127.0.0.1")) as client:
        refused = await client.post("/pay/checkout", data={"t": token, "tier": "basic"}, allow_redirects=False)
        assert refused.status == 400 and "sold by card" in await refused.text()
    assert len(fake_stripe.made("/v1/checkout/sessions")) == 1
    # an old message's card button answers with the policy, never a Stripe session
    old = await bh.press("bill:card:pro:0")
    assert "sold for Telegram Stars" in _texts(old) and len(fake_stripe.made("/v1/checkout/sessions")) == 1

    fake_stripe.put_subscription("sub_1", user_id=1001, tier="pro", customer="cus_9")
    web = create_web_app(bh.app, bh.bot)
    async with TestClient(TestServer(web, host="127.0.0.1")) as client:

        async def post(event_type: str, obj: dict) -> int:  # type: ignore[type-arg]
            body = fake_stripe.event(event_type, obj)
            response = await client.post(
                "/webhooks/stripe", data=body, headers={"Stripe-Signature": fake_stripe.sign(body)}
            )
            await bh.app.drain_outbox(bh.bot)  # the notices went to the notification outbox
            return response.status

        before = len(bh.telegram.calls)
        checkout = {"id": "cs_1", "object": "checkout.session", "client_reference_id": "1001", "subscription": "sub_1"}
        assert await post("checkout.session.completed", checkout) == 200
        told = bh.telegram.calls[before:]
        assert len(told) == 1 and "Payment received" in told[0].text
        assert (await bh.stored_user(1001)).tier == "pro"  # type: ignore[union-attr]
        invoice = {"id": "in_1", "object": "invoice", "subscription": "sub_1", "amount_paid": 2999, "currency": "usd",
                   "billing_reason": "subscription_create"}  # fmt: skip
        assert await post("invoice.paid", invoice) == 200
        sub = (await bh.send("/subscription"))[0].text
        assert "Plan: <b>Pro</b>" in sub and "card (Stripe)" in sub
        billing = (await bh.send("/billing"))[0]
        assert "29.99 USD" in billing.text
        assert not any(data and data.startswith("bill:portal") for _, data in billing.buttons)
        card_link = next(u for u in _urls(billing.params.get("reply_markup")) if u.startswith(f"{WEB}/pay/?t="))
        assert "stripe" not in str(billing.params)
        portal = await client.post(
            "/pay/portal", data={"t": card_link.split("?t=", 1)[1]}, allow_redirects=False
        )
        assert fake_stripe.made("/v1/billing_portal/sessions")[0].params["customer"] == "cus_9"
        assert portal.status == 303 and portal.headers["Location"].startswith("https://billing.stripe.com/")

        fake_stripe.subscriptions["sub_1"]["status"] = "past_due"
        failed = {"id": "in_2", "object": "invoice", "subscription": "sub_1", "amount_due": 2999, "currency": "usd"}
        before = len(bh.telegram.calls)
        assert await post("invoice.payment_failed", failed) == 200
        assert "payment failed" in bh.telegram.calls[before].text
        assert (await bh.stored_user(1001)).tier == "pro"  # type: ignore[union-attr] # grace period
    now = datetime.now(UTC)
    assert await bh.app.billing.run_due_jobs(now + timedelta(days=2)) == []
    notices = await bh.app.billing.run_due_jobs(now + timedelta(days=3, hours=1))
    assert [n.kind for n in notices] == ["downgraded"]
    assert (await bh.stored_user(1001)).tier == "free"  # type: ignore[union-attr]


async def test_cancel_stripe_at_period_end_then_downgrade(bh: Harness, fake_stripe: FakeStripe) -> None:
    await bh.send("/start")
    end = int(time.time()) + 10 * 86400
    fake_stripe.put_subscription("sub_2", user_id=1001, tier="basic", period_end=end)
    body = fake_stripe.event("customer.subscription.created", {"id": "sub_2", "object": "subscription"})
    web = create_web_app(bh.app, bh.bot)
    async with TestClient(TestServer(web, host="127.0.0.1")) as client:
        response = await client.post(
            "/webhooks/stripe", data=body, headers={"Stripe-Signature": fake_stripe.sign(body)}
        )
        assert response.status == 200
    billing = (await bh.send("/billing"))[0]
    cancel = next(data for _, data in billing.buttons if data and data.startswith("bill:cancel:"))
    done = await bh.press(cancel.replace("bill:cancel:", "bill:cancelok:"))
    assert fake_stripe.subscriptions["sub_2"]["cancel_at_period_end"] is True
    assert "won't renew" in _texts(done)
    assert any("Resume" in label for label, _ in (await bh.send("/billing"))[0].buttons)
    assert (await bh.stored_user(1001)).tier == "basic"  # type: ignore[union-attr]
    notices = await bh.app.billing.run_due_jobs(datetime.fromtimestamp(end, UTC) + timedelta(minutes=1))
    assert [n.kind for n in notices] == ["downgraded"]
    assert (await bh.stored_user(1001)).tier == "free"  # type: ignore[union-attr]


async def test_referral_link_brings_a_user_and_the_reward_lands_after_first_payment(bh: Harness) -> None:
    await bh.send("/start", user=1)
    card = (await bh.send("/referral", user=1))[-1]
    referrer = await bh.stored_user(1)
    assert referrer is not None
    link = f"https://t.me/hybrid_test_bot?start=ref_{referrer.referral_code}"
    assert link in card.text and "Invited: 0" in card.text
    assert card.params["reply_markup"]["inline_keyboard"][0][0]["url"].startswith("https://t.me/share/url?url=")

    await bh.send(f"/start ref_{referrer.referral_code}", user=2)
    await bh.press("bill:trial::0", user=2)  # a trial is not money: no reward
    assert await _count(bh, ReferralRewardRow) == 0
    payload, amount = await _invoice(bh, "basic", user=2)
    told = await bh.pay(payload, amount, charge_id="ref_ch_1", user=2)
    chats = {int(c.params["chat_id"]): c.text for c in told}
    assert "14 days of Pro" in chats[1] and "Thanks for joining" in chats[2]
    assert (await bh.stored_user(1)).tier == "pro"  # type: ignore[union-attr]
    await bh.pay(payload, amount, charge_id="ref_ch_2", user=2, recurring=True)  # a second payment: no second reward
    assert await _count(bh, ReferralRewardRow) == 1
    stats = (await bh.send("/referral", user=1))[-1].text
    assert (
        "Invited: 1" in stats
        and "Paid (converted): 1" in stats
        and "14 days" in stats
        and "Pending (not paid yet): 0" in stats
    )


async def test_billing_in_spanish(bh: Harness) -> None:
    text = (await bh.send("/subscription", lang="es"))[0].text
    assert "Tu suscripción" in text


async def test_stars_missed_renewal_gets_reminder_grace_then_downgrade(bh: Harness) -> None:
    await bh.send("/start")
    payload, amount = await _invoice(bh, "basic")
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    await bh.pay(payload, amount, charge_id="mr_1", recurring=True, first_recurring=True, expires=int(end.timestamp()))
    jobs = bh.app.billing
    assert [n.kind for n in await jobs.run_due_jobs(end - timedelta(days=1))] == ["renewal_soon"]
    assert await jobs.run_due_jobs(end + timedelta(hours=2)) == []  # a renewal may still land
    failed = await jobs.run_due_jobs(end + timedelta(days=1, minutes=1))
    assert [n.kind for n in failed] == ["payment_failed"]
    assert (await bh.stored_user(1001)).tier == "basic"  # type: ignore[union-attr]
    down = await jobs.run_due_jobs(end + timedelta(days=3, minutes=1))
    assert [n.kind for n in down] == ["downgraded"] and await jobs.run_due_jobs(end + timedelta(days=4)) == []
    assert (await bh.stored_user(1001)).tier == "free"  # type: ignore[union-attr]


async def test_garbage_and_foreign_callbacks_change_nothing(bh: Harness) -> None:
    await bh.send("/start")
    assert "expired" in _texts(await bh.press("bill:cancel:x:abc"))
    assert "isn't on sale" in _texts(await bh.press("bill:stars:bogus:0"))
    assert "isn't on sale" in _texts(await bh.press("bill:stars:free:0"))
    assert "no active subscription" in _texts(await bh.press("bill:cancelok::999"))
    assert await _count(bh, SubscriptionRow) == 0


async def test_referral_chains_reward_only_the_direct_referrer_once(bh: Harness) -> None:
    await bh.send("/start", user=11)
    a = await bh.stored_user(11)
    await bh.send(f"/start ref_{a.referral_code}", user=12)  # type: ignore[union-attr]
    b = await bh.stored_user(12)
    await bh.send(f"/start ref_{b.referral_code}", user=13)  # type: ignore[union-attr]
    await bh.send(f"/start ref_{a.referral_code}", user=13)  # no re-attribution
    assert (await bh.stored_user(13)).referred_by == 12  # type: ignore[union-attr]
    payload, amount = await _invoice(bh, "basic", user=13)
    await bh.pay(payload, amount, charge_id="chain_1", user=13)
    async with bh.app.sessionmaker() as session:
        rewards = (await session.execute(select(ReferralRewardRow.referrer_id, ReferralRewardRow.referee_id))).all()
    assert rewards == [(12, 13)]
    assert (await bh.stored_user(11)).tier == "free"  # type: ignore[union-attr]


async def test_no_trial_ending_nag_once_the_user_pays_for_the_plan(bh: Harness) -> None:
    await bh.send("/start")
    await bh.press("bill:trial::0")
    trial_end = (await bh.stored_user(1001)).tier_expires_at  # type: ignore[union-attr]
    payload, amount = await _invoice(bh, "pro")
    await bh.pay(payload, amount, charge_id="conv_1")
    assert trial_end is not None
    assert await bh.app.billing.run_due_jobs(trial_end - timedelta(days=1)) == []
    assert await bh.app.billing.run_due_jobs(trial_end + timedelta(minutes=1)) == []  # trial over, still Pro
    assert (await bh.stored_user(1001)).tier == "pro"  # type: ignore[union-attr]
