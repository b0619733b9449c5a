"""A refund takes back the referral reward its payment earned: a staff Stars refund, Telegram's refund
message, a Stripe refund or chargeback. Once, audited, the referrer told in their language, never re-earned."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.settings import Settings
from bot.web.app import create_web_app
from domain.billing.model import REWARD_DAYS
from domain.db.models import AuditRow, ReferralRewardRow, SubscriptionRow
from domain.db.uow import UnitOfWork
from tests.fakes.stripe import FakeStripe, stripe_settings
from tests.fakes.telegram import Call, FakeTelegram
from tests.harness import Harness, build_harness

STAFF = 9000
REFERRER = 1


@pytest.fixture
async def bh(stack: Settings, telegram: FakeTelegram, fake_stripe: FakeStripe) -> AsyncIterator[Harness]:
    h = await build_harness(stripe_settings(stack, fake_stripe, admin_ids=frozenset({STAFF})), telegram)
    yield h
    await h.close()


async def _scalar(h: Harness, query: Any) -> Any:
    async with h.app.sessionmaker() as session:
        return await session.scalar(query)


async def _referral_end(h: Harness) -> tuple[str, datetime | None]:
    async with h.app.sessionmaker() as session:
        row = (
            await session.execute(
                select(SubscriptionRow.status, SubscriptionRow.current_period_end).where(
                    SubscriptionRow.external_id == f"referral:{REFERRER}"
                )
            )
        ).one()
    return row[0], row[1]


async def _revocations(h: Harness) -> int:
    query = select(func.count()).select_from(AuditRow).where(AuditRow.action == "referral.revoked")
    return int(await _scalar(h, query) or 0)


def _to(calls: list[Call], chat: int) -> list[str]:
    return [c.text for c in calls if c.method == "sendMessage" and int(c.params["chat_id"]) == chat]


async def _refer(h: Harness, referee: int, lang: str = "en") -> None:
    await h.send("/start", user=REFERRER, lang=lang)
    code = (await h.stored_user(REFERRER)).referral_code  # type: ignore[union-attr]
    await h.send(f"/start ref_{code}", user=referee)


async def _pay_stars(h: Harness, referee: int, charge: str) -> list[Call]:
    calls = await h.press("bill:stars:basic:0", user=referee)
    link = next(c for c in calls if c.method == "createInvoiceLink")
    return await h.pay(link.params["payload"], int(link.params["prices"][0]["amount"]), charge_id=charge, user=referee)


async def test_a_staff_stars_refund_takes_the_reward_back_once_and_tells_the_referrer(bh: Harness) -> None:
    await _refer(bh, 2, lang="ru")
    await _refer(bh, 3, lang="ru")
    await _pay_stars(bh, 2, "ch_a")
    await _pay_stars(bh, 3, "ch_b")
    assert (await bh.stored_user(REFERRER)).tier == "pro"  # type: ignore[union-attr]
    _, stacked = await _referral_end(bh)  # two rewards stacked: 28 days
    assert stacked is not None

    refund = await bh.send("/refund ch_a", user=STAFF)
    told = _to(refund, REFERRER)
    assert len(told) == 1 and "награда отменена" in told[0] and "14 дней" in told[0]  # in the referrer's language
    status, end = await _referral_end(bh)
    assert status == "active" and end == stacked - timedelta(days=REWARD_DAYS)  # the other referee's days remain
    assert (await bh.stored_user(REFERRER)).tier == "pro"  # type: ignore[union-attr]
    assert await _revocations(bh) == 1
    audit = (await _scalar(bh, select(AuditRow).where(AuditRow.action == "referral.revoked")))
    assert audit.actor_id == STAFF and audit.user_id == REFERRER and audit.details["days"] == REWARD_DAYS

    # Telegram's echo of the same refund changes nothing more
    echo = await bh.refunded("x", 500, charge_id="ch_a", user=2)
    assert _to(echo, REFERRER) == [] and await _revocations(bh) == 1
    # the refunded referee pays again: a reward is never earned twice
    again = await _pay_stars(bh, 2, "ch_a2")
    assert _to(again, REFERRER) == []
    assert await _referral_end(bh) == (status, end)
    stats = (await bh.send("/referral", user=REFERRER, lang="ru"))[-1].text
    async with UnitOfWork(bh.app.sessionmaker) as uow:  # what /referral shows: the revoked reward left out
        assert await uow.billing.referral_counts(REFERRER) == (2, 1, REWARD_DAYS, 1)
        shown = await bh.app.dispatcher["referrals"].stats(uow, await uow.users.get(REFERRER))
    assert (shown.converted, shown.reward_days, shown.pending) == (1, REWARD_DAYS, 0)
    assert f"{REWARD_DAYS}" in stats

    # the second refund ends the referral plan: the referrer is back on Free
    last = _to(await bh.send("/refund ch_b", user=STAFF), REFERRER)
    assert len(last) == 1 and "закончился" in last[0]
    assert (await _referral_end(bh))[0] == "canceled"
    assert (await bh.stored_user(REFERRER)).tier == "free"  # type: ignore[union-attr]
    revoked = await _scalar(bh, select(func.count()).select_from(ReferralRewardRow).where(
        ReferralRewardRow.revoked_at.is_not(None)))  # fmt: skip
    assert revoked == 2 and await _revocations(bh) == 2


async def test_a_stripe_refund_or_chargeback_takes_the_reward_back(bh: Harness, fake_stripe: FakeStripe) -> None:
    await _refer(bh, 2)
    await _refer(bh, 3)
    web = create_web_app(bh.app, bh.bot)
    async with TestClient(TestServer(web, host="127.0.0.1")) as client:

        async def post(event_type: str, obj: dict[str, Any]) -> list[Call]:
            before = len(bh.telegram.calls)
            body = fake_stripe.event(event_type, obj)
            response = await client.post(
                "/webhooks/stripe", data=body, headers={"Stripe-Signature": fake_stripe.sign(body)}
            )
            assert response.status == 200
            await bh.app.drain_outbox(bh.bot)
            return bh.telegram.calls[before:]

        for referee in (2, 3):
            fake_stripe.put_subscription(f"sub_{referee}", user_id=referee, tier="basic", customer=f"cus_{referee}")
            await post("checkout.session.completed", {"id": f"cs_{referee}", "object": "checkout.session",
                                                      "client_reference_id": str(referee),
                                                      "subscription": f"sub_{referee}"})  # fmt: skip
            await post("invoice.paid", {"id": f"in_{referee}", "object": "invoice", "subscription": f"sub_{referee}",
                                        "amount_paid": 999, "currency": "usd",
                                        "billing_reason": "subscription_create"})  # fmt: skip
        _, stacked = await _referral_end(bh)
        assert stacked is not None

        partial = {"id": "ch_2", "object": "charge", "refunded": False, "amount_refunded": 100, "payment_intent": "pi_2"}
        fake_stripe.invoice_payments["pi_2"] = "in_2"
        assert _to(await post("charge.refunded", partial), REFERRER) == []  # a partial refund keeps the reward
        full = {**partial, "refunded": True, "amount_refunded": 999}
        told = _to(await post("charge.refunded", full), REFERRER)
        assert len(told) == 1 and "was refunded, so that reward is taken back" in told[0]
        assert (await _referral_end(bh))[1] == stacked - timedelta(days=REWARD_DAYS)
        status = await _scalar(bh, select(func.count()).select_from(AuditRow).where(AuditRow.action == "billing.refunded"))
        assert status == 1
        assert _to(await post("charge.refunded", full), REFERRER) == []  # another delivery of the same refund

        dispute = {"id": "dp_3", "object": "dispute", "charge": "ch_3", "payment_intent": "pi_3", "status": "needs_response"}
        fake_stripe.invoice_payments["pi_3"] = "in_3"
        told = _to(await post("charge.dispute.created", dispute), REFERRER)
        assert len(told) == 1 and "has ended" in told[0]
    assert (await bh.stored_user(REFERRER)).tier == "free"  # type: ignore[union-attr]
    assert await _revocations(bh) == 2
    now = datetime.now(UTC)
    assert (await _referral_end(bh))[1] <= now  # type: ignore[operator]
