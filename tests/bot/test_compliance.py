"""/compliance: the disclosure gate on trading, consent versions, export, deletion, my activity."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram import Router
from aiogram.filters import Command as CommandFilter
from aiogram.types import Message
from sqlalchemy import func, select

from bot.i18n import N_
from bot.registry import Category, Command, Money, Registry
from bot.settings import Settings
from bot.views import compliance as views
from bot.views.compliance import ComplianceCB
from bot.views.feedback import FeedbackCB
from bot.views.support import SupportCB
from domain import compliance
from domain.compliance import Document
from domain.db.models import AuditRow, ConsentRow, FeedbackRow, PaymentRow, TicketMessageRow, TicketRow, UserRow
from domain.db.uow import UnitOfWork
from handlers import COMMANDS
from tests.fakes.telegram import FakeTelegram
from tests.harness import Harness, build_harness

ANN, BOB = 1001, 1002


def _trading_router() -> Router:
    router = Router(name="test-trading")

    @router.message(CommandFilter("tradex"))
    async def trade(message: Message) -> None:
        await message.answer("order placed")

    @router.callback_query()
    async def button(query: Any) -> None:
        await query.answer("order button handled")

    return router


@pytest.fixture
async def gated(stack: Settings, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    """A registry with the real /compliance and a trading command; users NOT onboarded."""
    registry = Registry(
        [
            *[c for c in COMMANDS if c.name in ("start", "compliance")],
            Command("tradex", _trading_router, N_("Trading"), Category.TRADING, callbacks=("tx",),
                    money=Money(buttons=("tx",))),  # fmt: skip
        ]
    )
    h = await build_harness(stack, telegram, registry=registry)
    h.onboarded = False
    yield h
    await h.close()


async def test_trading_is_locked_until_the_risk_disclosure_is_accepted(gated: Harness) -> None:
    h = gated
    calls = await h.send("/tradex EURUSD")
    assert len(calls) == 1 and "Please read before trading" in calls[0].text
    assert "order placed" not in calls[0].text
    assert calls[0].buttons == [("✅ I accept", "cmp:accept:risk")]
    pressed = await h.press("tx:confirm:1")  # a trading button is gated too
    assert all("order button handled" not in c.text for c in pressed)
    accepted = await h.press(calls[0].buttons[0][1])
    assert "accepted" in accepted[0].text and "unlocked" in accepted[0].text
    assert (await h.send("/tradex EURUSD"))[0].text == "order placed"
    async with UnitOfWork(h.app.sessionmaker) as uow:
        status = await h.app.compliance.status(uow, ANN)
        actions = [e.action for e in await uow.audit.for_user(ANN)]
    assert status.current(Document.RISK) and not status.current(Document.TERMS)
    assert "consent.accepted" in actions
    assert (await h.send("/tradex", user=BOB))[0].text != "order placed"  # consent is per user


async def test_a_new_disclosure_version_asks_again(gated: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = gated
    await h.send("/start")
    await h.press("cmp:accept:risk")
    assert (await h.send("/tradex"))[0].text == "order placed"
    monkeypatch.setitem(compliance.CURRENT, Document.RISK, "2027-01")
    monkeypatch.setitem(views.TEXTS, (Document.RISK, "2027-01"), views.TEXTS[(Document.RISK, "2026-11")])
    again = await h.send("/tradex")
    assert "Please read before trading" in again[0].text and "2027-01" in again[0].text
    home = await h.send("/compliance")
    assert "you accepted version 2026-11" in home[0].text
    await h.press("cmp:accept:risk")
    assert (await h.send("/tradex"))[0].text == "order placed"


@pytest.mark.parametrize(
    ("lang", "title", "locked"),
    [
        ("en", "Compliance and your data", "locked until you accept"),
        ("ru", "Документы и ваши данные", "заблокированы до принятия"),
        ("es", "Cumplimiento y tus datos", "bloqueados hasta que aceptes"),
    ],
)
async def test_compliance_home_in_each_language(gated: Harness, lang: str, title: str, locked: str) -> None:
    home = (await gated.send("/compliance", lang=lang))[0]
    assert title in home.text and locked in home.text and "2026-11" in home.text
    doc = await gated.press(ComplianceCB(action="doc", value="privacy").pack(), lang=lang)
    assert "/compliance" in doc[0].text and ("cmp:accept:privacy" in [d for _, d in doc[0].buttons])


async def _fill(h: Harness, user: int, secret: str) -> None:
    await h.send("/support", user=user, first_name=f"Name{user}")
    await h.press(SupportCB(action="new").pack(), user=user)
    await h.press(SupportCB(action="cat", value="account").pack(), user=user)
    await h.send(f"ticket of {secret}", user=user, first_name=f"Name{user}")
    await h.send("/feedback", user=user)
    await h.press(FeedbackCB(action="rate", value=4).pack(), user=user)
    await h.send(f"feedback of {secret}", user=user)


async def test_export_contains_my_data_and_nobody_elses(harness: Harness) -> None:
    h = harness
    await _fill(h, ANN, "ann-secret")
    await _fill(h, BOB, "bob-secret")
    calls = await h.press(ComplianceCB(action="export").pack(), user=ANN)
    docs = [c for c in calls if c.method == "sendDocument"]
    assert len(docs) == 1 and int(docs[0].params["chat_id"]) == ANN
    upload = next(v for v in docs[0].params.values() if isinstance(v, dict) and "content" in v)
    assert upload["filename"] == f"hybrid-trader-data-{ANN}.json"
    raw = upload["content"].decode()
    data = json.loads(raw)
    assert data["user_id"] == ANN and data["profile"]["first_name"] == "Ann"
    assert data["profile"]["username"] == f"user{ANN}"
    assert data["tickets"][0]["messages"][0]["text"] == "ticket of ann-secret"
    assert [f["text"] for f in data["tables"]["feedback"]] == ["feedback of ann-secret"]
    assert {c["document"] for c in data["tables"]["consents"]} == {"risk", "terms", "privacy"}
    assert any(a["action"] == "ticket.opened" for a in data["audit"])
    assert "bob-secret" not in raw and f"user{BOB}" not in raw and str(BOB) not in raw
    async with UnitOfWork(h.app.sessionmaker) as uow:
        assert "data.exported" in [e.action for e in await uow.audit.for_user(ANN)]


async def test_deletion_leaves_no_personal_data_and_keeps_payments(harness: Harness) -> None:
    h = harness
    await _fill(h, ANN, "ann-secret")
    await _fill(h, BOB, "bob-secret")
    async with UnitOfWork(h.app.sessionmaker) as uow:
        now = datetime.now(UTC)
        uow.session.add(PaymentRow(user_id=ANN, rail="stars", kind="subscription", tier="pro", amount=1500,
                                   currency="XTR", status="paid", external_id="charge-1", created_at=now))  # fmt: skip
        await uow.commit()
    confirm = await h.press(ComplianceCB(action="delete").pack(), user=ANN)
    assert "payment records" in confirm[0].text
    assert ("🗑 Yes, delete my data", "cmp:erase:") in confirm[0].buttons
    done = await h.press(ComplianceCB(action="erase").pack(), user=ANN)
    assert "deleted" in done[0].text and "payments" in done[0].text
    async with UnitOfWork(h.app.sessionmaker) as uow:
        s = uow.session
        row = await s.get(UserRow, ANN)
        assert row is not None and (row.first_name, row.username, row.language, row.tg_language) == ("", None, None, None)
        for model in (TicketRow, FeedbackRow, ConsentRow):
            assert await s.scalar(select(func.count()).select_from(model).where(model.user_id == ANN)) == 0
        texts = list(await s.scalars(select(TicketMessageRow.text)))
        assert texts == ["ticket of bob-secret"]
        assert await s.scalar(select(func.count()).select_from(PaymentRow).where(PaymentRow.user_id == ANN)) == 1
        assert await s.scalar(select(func.count()).select_from(FeedbackRow).where(FeedbackRow.user_id == BOB)) == 1
        details = [json.dumps(d) for d in await s.scalars(select(AuditRow.details).where(AuditRow.user_id == ANN))]
        assert "data.erased" in list(await s.scalars(select(AuditRow.action).where(AuditRow.user_id == ANN)))
        export = json.dumps(await uow.personal_data.export(ANN))
    assert "ann-secret" not in export and '"Ann"' not in export and f"user{ANN}" not in export
    assert all("ann-secret" not in d for d in details)
    # afterwards the user starts fresh: greeted as new, and the disclosures are asked again
    assert "Welcome, Ann" in (await h.send("/start", user=ANN))[0].text
    async with UnitOfWork(h.app.sessionmaker) as uow:
        assert not await h.app.compliance.trading_unlocked(uow, ANN)


async def test_my_activity_lists_only_my_entries(harness: Harness) -> None:
    h = harness
    await _fill(h, ANN, "ann")
    await _fill(h, BOB, "bob")
    await h.press(ComplianceCB(action="export").pack(), user=BOB)
    shown = (await h.press(ComplianceCB(action="activity").pack(), user=ANN))[0].text
    assert "ticket.opened" in shown and "data.exported" not in shown


async def _exported(h: Harness, user: int) -> str:
    calls = await h.press(ComplianceCB(action="export").pack(), user=user)
    doc = next(c for c in calls if c.method == "sendDocument")
    return next(v for v in doc.params.values() if isinstance(v, dict) and "content" in v)["content"].decode()


async def test_a_referral_shows_neither_side_the_others_id(harness: Harness) -> None:
    """The referee's export held {'referrer_id': ...} in an audit entry, the referrer's the referee's id
    (referral.rewarded), though the profile already redacted ``referred_by``. Ids chosen so no timestamp,
    amount or row id can contain them by chance."""
    h = harness
    referrer, referee = 777_000_111, 888_000_222
    await h.send("/start", user=referrer)
    code = (await h.stored_user(referrer)).referral_code  # type: ignore[union-attr]
    await h.send(f"/start ref_{code}", user=referee)
    link = next(c for c in await h.press("bill:stars:basic:0", user=referee) if c.method == "createInvoiceLink")
    await h.pay(link.params["payload"], int(link.params["prices"][0]["amount"]), charge_id="ch_ref", user=referee)
    async with UnitOfWork(h.app.sessionmaker) as uow:
        actions = {a.action for a in await uow.audit.for_user(referrer)} | {
            a.action for a in await uow.audit.for_user(referee)
        }
    assert {"referral.attributed", "referral.rewarded"} <= actions  # both entries exist to be redacted

    mine, theirs = await _exported(h, referee), await _exported(h, referrer)
    assert str(referrer) not in mine and str(referee) in mine
    assert str(referee) not in theirs and str(referrer) in theirs
    attributed = next(a for a in json.loads(mine)["audit"] if a["action"] == "referral.attributed")
    assert attributed["details"] == {"referrer_id": "another user"}
    rewarded = next(a for a in json.loads(theirs)["audit"] if a["action"] == "referral.rewarded")
    assert rewarded["details"]["referee_id"] == "another user" and rewarded["details"]["days"] > 0
