"""The consumer payments policy as users meet it: Stars in the chat, cards only on the operator's web page,
/paysupport (payments, refunds, a ticket about one's own payment) and /terms, in en/ru/es."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram.types import Chat
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func, select

from bot.settings import Settings
from bot.views.paysupport import PaySupportCB
from bot.web.app import create_web_app
from bot.web.auth import WebAuth
from domain.db.models import PaymentRow, TicketRow
from domain.db.uow import UnitOfWork
from domain.support.tickets import PaymentNotAttachable
from tests.bot.market.conftest import Unlimited
from tests.fakes.stripe import FakeStripe, stripe_settings
from tests.fakes.telegram import Call, FakeTelegram
from tests.harness import Harness, build_harness

AGENT, ANN, BOB = 9002, 1001, 1002
WEB = "https://bot.example.com"
GROUP = Chat(id=-1001234567890, type="supergroup", title="Traders")
LANGS = ["en", "ru", "es"]
CHARGE = "stxAbCdEfGhIjKlMnOpQrStUvWxYz0123456789"  # Telegram's charge ids are long


@pytest.fixture
async def shop(stack: Settings, telegram: FakeTelegram, fake_stripe: FakeStripe) -> AsyncIterator[Harness]:
    """Stripe fully configured, the operator's switch left at its default (off). The walks send far more
    updates a minute than a person would: the rate limiter (tested on its own) stays out of the way."""
    settings = stripe_settings(stack, fake_stripe, support_ids=frozenset({AGENT}))
    h = await build_harness(settings, telegram, limiter=Unlimited())
    await h.send("/start", user=AGENT)
    yield h
    await h.close()


@pytest.fixture
async def web_shop(stack: Settings, telegram: FakeTelegram, fake_stripe: FakeStripe) -> AsyncIterator[Harness]:
    settings = stripe_settings(stack, fake_stripe, consumer_card_checkout="web", web_public_url=WEB)
    h = await build_harness(settings, telegram, limiter=Unlimited())
    yield h
    await h.close()


def _urls(call: Call) -> list[str]:
    markup = call.params.get("reply_markup") or {}
    return [b["url"] for row in markup.get("inline_keyboard", []) for b in row if "url" in b]


def _texts(calls: list[Call]) -> str:
    return "\n".join(c.text for c in calls)


def _no_card_in_chat(calls: list[Call]) -> None:
    """Every message, edit and alert the chat got: no card button, no Stripe page, no link off Telegram."""
    assert calls
    for call in calls:
        for _, data in call.buttons:
            assert not (data or "").startswith(("bill:card", "bill:portal")), (call.method, data)
        for url in _urls(call):
            assert url.startswith("https://t.me/"), (call.method, url)  # Stars invoices and share links only
        blob = str(call.params).lower()
        assert "stripe.com" not in blob and "pay by card" not in blob and "/pay/" not in blob, call.method


async def _post_stripe(h: Harness, fake: FakeStripe, event_type: str, obj: dict[str, Any]) -> None:
    body = fake.event(event_type, obj)
    async with TestClient(TestServer(create_web_app(h.app, h.bot), host="127.0.0.1")) as client:
        response = await client.post("/webhooks/stripe", data=body, headers={"Stripe-Signature": fake.sign(body)})
        assert response.status == 200


async def _stars_subscriber(h: Harness, *, user: int, lang: str, charge: str, expires: datetime) -> None:
    calls = await h.press("bill:stars:basic:0", user=user, lang=lang)
    link = next(c for c in calls if c.method == "createInvoiceLink")
    await h.pay(
        link.params["payload"], int(link.params["prices"][0]["amount"]), charge_id=charge, user=user, lang=lang,
        recurring=True, first_recurring=True, expires=int(expires.timestamp()),
    )  # fmt: skip


@pytest.mark.parametrize("lang", LANGS)
async def test_no_card_checkout_or_stripe_url_in_any_chat_flow_by_default(
    shop: Harness, fake_stripe: FakeStripe, lang: str
) -> None:
    h = shop
    start = len(h.telegram.calls)
    await h.send("/start", lang=lang)
    for command in ("/premium", "/subscription", "/billing"):
        await h.send(command, lang=lang)
    for data in ("bill:plan::0", "bill:plan:pro:0", "bill:history::0", "bill:trial::0", "bill:stars:pro:0"):
        await h.press(data, lang=lang)
    await h.app.drain_outbox(h.bot)
    # buttons of messages sent before the policy: answered with it, never a Stripe session
    old = await h.press("bill:card:pro:0", lang=lang) + await h.press("bill:portal::0", lang=lang)
    assert {"en": "sold for Telegram Stars", "ru": "продаются за Telegram Stars", "es": "se venden en Telegram Stars"}[
        lang
    ] in _texts(old)
    # a card subscriber (from before, or from the web page) and a Stars subscriber, with their notices
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    await _stars_subscriber(h, user=BOB, lang=lang, charge="pol_1", expires=end)
    fake_stripe.put_subscription("sub_p", user_id=ANN, tier="pro", customer="cus_p", period_end=int(end.timestamp()))
    await _post_stripe(h, fake_stripe, "customer.subscription.created", {"id": "sub_p", "object": "subscription"})
    for command in ("/premium", "/subscription", "/billing"):
        await h.send(command, lang=lang)
        await h.send(command, user=BOB, lang=lang)
    jobs = h.app.billing
    assert {n.kind for n in await jobs.run_due_jobs(end - timedelta(days=1))} >= {"renewal_soon"}
    failed = await jobs.run_due_jobs(end + timedelta(days=1, minutes=1))
    assert "payment_failed" in {n.kind for n in failed}
    assert "downgraded" in {n.kind for n in await jobs.run_due_jobs(end + timedelta(days=4))}
    fake_stripe.subscriptions["sub_p"]["status"] = "past_due"
    due = {"id": "in_p", "object": "invoice", "subscription": "sub_p", "amount_due": 2999, "currency": "usd"}
    await _post_stripe(h, fake_stripe, "invoice.payment_failed", due)
    await h.app.drain_outbox(h.bot)
    calls = h.telegram.calls[start:]
    _no_card_in_chat(calls)
    told = _texts([c for c in calls if c.method == "sendMessage"])
    stars_failed = {"en": "top up your Stars", "ru": "пополните Stars", "es": "recarga tus Stars"}[lang]
    card_failed = {"en": "check your card with your bank", "ru": "проверьте карту", "es": "revisa tu tarjeta"}[lang]
    assert stars_failed in told and card_failed in told
    assert fake_stripe.made("/v1/checkout/sessions") == [] and fake_stripe.made("/v1/billing_portal/sessions") == []
    # renewal management is not a sale: a card subscriber still cancels in the chat
    billing = (await h.send("/billing", lang=lang))[0]
    assert any(data and data.startswith("bill:cancel:") for _, data in billing.buttons)
    # and the card page does not exist
    token = WebAuth("", h.app.settings.secret()).issue_link_token(ANN)
    async with TestClient(TestServer(create_web_app(h.app, h.bot), host="127.0.0.1")) as client:
        assert (await client.get("/pay/", params={"t": token})).status == 404
        assert (await client.post("/pay/checkout", data={"t": token, "tier": "pro"})).status == 404
    assert fake_stripe.made("/v1/checkout/sessions") == []


@pytest.mark.parametrize("lang", LANGS)
async def test_with_the_switch_on_cards_are_only_a_link_to_the_operators_page(
    web_shop: Harness, fake_stripe: FakeStripe, lang: str
) -> None:
    h = web_shop
    await h.send("/start", lang=lang)
    premium = (await h.send("/premium", lang=lang))[0]
    assert not any(data and data.startswith("bill:card") for _, data in premium.buttons)
    urls = _urls(premium)
    page = next(u for u in urls if u.startswith(f"{WEB}/pay/?t="))
    assert [u for u in urls if not u.startswith("https://t.me/")] == [page] and "stripe" not in str(premium.params)
    token = page.split("?t=", 1)[1]
    async with TestClient(TestServer(create_web_app(h.app, h.bot), host="127.0.0.1")) as client:
        shown = await client.get("/pay/", params={"t": token})
        body = await shown.text()
        assert shown.status == 200 and "form-action 'self'" in shown.headers["Content-Security-Policy"]
        assert {"en": "Pay $29.99 a month by card", "ru": "Оплатить картой $29.99 в месяц",
                "es": "Pagar $29.99 al mes con tarjeta"}[lang] in body  # fmt: skip
        assert "stripe.com" not in body and "Manage my card" not in body  # no card subscription yet
        for forged in ("", "x.y", token[:-2] + "AA"):
            refused = await client.post("/pay/checkout", data={"t": forged, "tier": "pro"}, allow_redirects=False)
            assert refused.status == 401
        assert (await client.post("/pay/checkout", data={"t": token, "tier": "free"})).status == 400
        assert (await client.post("/pay/portal", data={"t": token}, allow_redirects=False)).status == 400
        assert fake_stripe.made("/v1/checkout/sessions") == []  # nothing was created for a refused form
        went = await client.post("/pay/checkout", data={"t": token, "tier": "pro"}, allow_redirects=False)
        assert went.status == 303 and went.headers["Location"].startswith("https://checkout.stripe.com/")
    made = fake_stripe.made("/v1/checkout/sessions")
    assert len(made) == 1 and made[0].params["client_reference_id"] == str(ANN)
    assert made[0].params["success_url"].startswith("https://t.me/")
    # an expired link: a localized page, nothing at Stripe
    stale = WebAuth("", h.app.settings.secret(), clock=lambda: time.time() - 3600).issue_link_token(ANN)
    async with TestClient(TestServer(create_web_app(h.app, h.bot), host="127.0.0.1")) as client:
        late = await client.get("/pay/", params={"t": stale})
        assert late.status == 401 and "/premium" in await late.text()
    assert len(fake_stripe.made("/v1/checkout/sessions")) == 1


async def _payment_id(h: Harness, charge: str) -> int:
    async with h.app.sessionmaker() as session:
        found = await session.scalar(select(PaymentRow.id).where(PaymentRow.external_id == f"tg:{charge}"))
    assert found is not None
    return int(found)


async def _tickets(h: Harness) -> list[TicketRow]:
    async with h.app.sessionmaker() as session:
        return list(await session.scalars(select(TicketRow).order_by(TicketRow.id)))


HELP = {"en": "Payment help", "ru": "Помощь с оплатой", "es": "Ayuda con los pagos"}
REFUNDS = {"en": "within 14 days", "ru": "в течение 14 дней", "es": "en un plazo de 14 días"}
OPENED = {"en": "is open", "ru": "открыт", "es": "está abierto"}


@pytest.mark.parametrize("lang", LANGS)
async def test_paysupport_lists_payments_and_opens_a_ticket_about_one_that_staff_see(shop: Harness, lang: str) -> None:
    h = shop
    await h.send("/start", lang=lang)
    empty = (await h.send("/paysupport", lang=lang))[0]
    assert HELP[lang] in empty.text and REFUNDS[lang] in empty.text
    assert not any(data and data.startswith("pys:pick") for _, data in empty.buttons)
    await _stars_subscriber(h, user=ANN, lang=lang, charge=CHARGE, expires=datetime.now(UTC) + timedelta(days=30))
    pay_id = await _payment_id(h, CHARGE)
    shown = (await h.send("/paysupport", lang=lang))[0]
    assert "500 ⭐" in shown.text and "Telegram Stars" in shown.text and "stxAbCdE…456789" in shown.text
    assert CHARGE not in shown.text  # shortened for the user
    pick = PaySupportCB(action="pick", pay=pay_id).pack()
    assert pick in [data for _, data in shown.buttons]
    prompt = await h.press(pick, lang=lang)
    assert "stxAbCdE…456789" in _texts(prompt)
    opened = await h.send("The Basic plan did not switch on <b>", lang=lang)
    assert OPENED[lang] in _texts(opened)
    tickets = await _tickets(h)
    assert len(tickets) == 1 and tickets[0].payment_id == pay_id and tickets[0].category == "billing"
    await h.app.drain_outbox(h.bot)
    told = [c.text for c in h.telegram.calls if c.method == "sendMessage" and int(c.params.get("chat_id", 0)) == AGENT]
    assert any("500 ⭐" in t and "stxAbCdE…456789" in t for t in told)  # the new-ticket message names the payment
    # support staff find it in /tickets with the payment and its full charge id (what /refund takes)
    queue = (await h.send("/tickets", user=AGENT))[0]
    view = next(data for _, data in queue.buttons if data and data.startswith(f"tk:view:{tickets[0].id}"))
    thread = _texts(await h.press(view, user=AGENT))
    assert "500 ⭐" in thread and CHARGE in thread and "did not switch on &lt;b&gt;" in thread
    # the owner sees the payment on the ticket too
    mine = _texts(await h.press(f"sup:view::{tickets[0].id}", lang=lang))
    assert "stxAbCdE…456789" in mine


async def test_another_users_payment_cannot_be_attached(shop: Harness) -> None:
    h = shop
    await h.send("/start", user=ANN)
    await h.send("/start", user=BOB)
    await _stars_subscriber(h, user=ANN, lang="en", charge=CHARGE, expires=datetime.now(UTC) + timedelta(days=30))
    ann_payment = await _payment_id(h, CHARGE)
    for forged in (str(ann_payment), "0", "-1", "2147483648", "99999999999999999", "abc"):
        calls = await h.press(f"pys:pick:{forged}", user=BOB)
        assert calls and "stxAbCdE" not in _texts(calls)  # nothing of Ann's payment shows
        typed = await h.send("refund me", user=BOB)  # no ticket form was started
        assert not any("is open" in c.text for c in typed)
    refused = _texts(await h.press(f"pys:pick:{ann_payment}", user=BOB))
    assert "isn't one of yours" in refused
    assert await _tickets(h) == []
    # the service checks again when the ticket is stored (a stale or forged form state changes nothing)
    bob = await h.stored_user(BOB)
    assert bob is not None
    async with UnitOfWork(h.app.sessionmaker) as uow:
        with pytest.raises(PaymentNotAttachable):
            await h.app.dispatcher["support"].open(
                uow, bob, h.app.tiers.get("free"), "billing", "mine now", payment_id=ann_payment
            )
    assert await _tickets(h) == []
    async with h.app.sessionmaker() as session:
        owner = await session.scalar(select(PaymentRow.user_id).where(PaymentRow.id == ann_payment))
        count = await session.scalar(select(func.count()).select_from(PaymentRow))
    assert owner == ANN and count == 1


TERMS = {
    "en": "Hybrid Trader is a software tool",
    "ru": "Hybrid Trader — это программный инструмент",
    "es": "Hybrid Trader es una herramienta de software",
}


@pytest.mark.parametrize("lang", LANGS)
async def test_terms_with_privacy_and_disclosure_in_private_and_in_groups(shop: Harness, lang: str) -> None:
    h = shop
    await h.send("/start", lang=lang)
    terms = (await h.send("/terms", lang=lang))[0]
    assert TERMS[lang] in terms.text and "/paysupport" in terms.text
    datas = [data for _, data in terms.buttons]
    assert "trm:privacy" in datas and "trm:risk" in datas
    pressed = await h.press("trm:privacy", lang=lang)
    privacy = _texts(pressed)
    assert "/compliance" in privacy and TERMS[lang] not in privacy
    assert "trm:terms" in [data for c in pressed for _, data in c.buttons]  # back to the terms
    bogus = _texts(await h.press("trm:bogus<b>", lang=lang))
    assert bogus and "BUG-" not in bogus and TERMS[lang] not in bogus
    # in a group /terms is read where it is asked; /paysupport shows payments, so it stays private
    group_terms = await h.send("/terms", lang=lang, chat=GROUP)
    assert TERMS[lang] in _texts(group_terms)
    group_pay = _texts(await h.send("/paysupport", lang=lang, chat=GROUP))
    assert HELP[lang] not in group_pay and "/paysupport" in group_pay
    help_text = (await h.send("/help", lang=lang))[0].text
    assert "/paysupport — " in help_text and "/terms — " in help_text
