"""A Stars payment is stored before it is handled, and applied once even when handling fails.

The grant fails once (a database error injected at the billing service): the raw update and its charge id
are stored, the payer is told the payment is being processed, the scheduler's retry applies the plan once
and tells them; a second delivery of the same charge grants nothing more. Runs on both stacks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from bot.middlewares import payments
from bot.settings import Settings
from domain.clock import utcnow
from domain.db.models import AuditRow, PaymentInboxRow, PaymentRow, SubscriptionRow
from tests.fakes.telegram import FakeTelegram
from tests.harness import Harness, build_harness
from workers.scheduler import default_jobs

PAYER = 1001
STAFF = 9000
PROCESSING = "We received your payment and are activating it"
ACTIVATED = "Payment received: you're on Pro"


@pytest.fixture
async def bh(stack: Settings, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    h = await build_harness(stack.model_copy(update={"admin_ids": frozenset({STAFF})}), telegram)
    await h.send("/start", user=PAYER)
    yield h
    await h.close()


async def _count(h: Harness, model: type, *where: object) -> int:
    async with h.app.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


async def _invoice(h: Harness) -> str:
    calls = await h.press("bill:stars:pro:0", user=PAYER)
    return str(next(c for c in calls if c.method == "createInvoiceLink").params["payload"])


def _fail_once(h: Harness, monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Make one billing step raise a database error the first time it runs."""
    return _fail_times(h, monkeypatch, name, 1)


def _fail_times(h: Harness, monkeypatch: pytest.MonkeyPatch, name: str, times: int) -> list[int]:
    """Make one billing step raise a database error the first ``times`` times it runs."""
    original = getattr(h.app.billing, name)
    calls: list[int] = []

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) <= times:
            raise OperationalError("UPDATE users", {}, ConnectionError("database connection lost"))
        return await original(*args, **kwargs)

    monkeypatch.setattr(h.app.billing, name, flaky)
    return calls


def _texts(calls: list[Any], chat: int = PAYER) -> str:
    return "\n".join(c.text for c in calls if c.method == "sendMessage" and int(c.params["chat_id"]) == chat)


async def test_a_failed_grant_is_kept_retried_once_and_the_payer_told(
    bh: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = await _invoice(bh)
    _fail_once(bh, monkeypatch, "_apply_tier")

    first = await bh.pay(payload, 1500, charge_id="ch_lost", recurring=True, first_recurring=True)
    assert PROCESSING in _texts(first) and ACTIVATED not in _texts(first)
    assert (await bh.stored_user(PAYER)).tier == "free"  # type: ignore[union-attr]
    assert await _count(bh, PaymentRow) == 0  # the failed transaction left nothing half-done
    async with bh.app.sessionmaker() as session:
        row = (await session.scalars(select(PaymentInboxRow))).one()
    assert (row.charge_id, row.user_id, row.status, row.attempts) == ("ch_lost", PAYER, "pending", 1)
    assert row.raw["message"]["successful_payment"]["telegram_payment_charge_id"] == "ch_lost"
    assert row.raw["message"]["successful_payment"]["invoice_payload"] == payload
    assert row.last_error is not None and row.last_error.startswith("SYS-DB ")
    admin = _texts(await bh.send("/admin", user=STAFF), STAFF)
    assert "Payments received, not applied yet: 1" in admin  # staff see the stuck payment

    # the retry is the scheduler's job (behind the leader lease)
    job = next(j for j in default_jobs(bh.app) if j.name == "payment-inbox")
    await job.run()
    assert await _count(bh, PaymentRow) == 0  # not due yet
    applied = await bh.app.billing.retry_inbox(utcnow() + timedelta(minutes=5))
    assert applied == 1
    await bh.app.drain_outbox(bh.bot)
    told = [c for c in bh.telegram.calls if c.method == "sendMessage" and int(c.params["chat_id"]) == PAYER]
    assert sum(ACTIVATED in c.text for c in told) == 1 and sum(PROCESSING in c.text for c in told) == 1
    assert (await bh.stored_user(PAYER)).tier == "pro"  # type: ignore[union-attr]

    # Telegram delivers the same charge again, and the job runs again: nothing more
    again = await bh.pay(payload, 1500, charge_id="ch_lost", recurring=True, first_recurring=True)
    assert _texts(again) == ""
    assert await bh.app.billing.retry_inbox(utcnow() + timedelta(hours=2)) == 0
    assert await _count(bh, PaymentRow) == 1 and await _count(bh, SubscriptionRow) == 1
    assert await _count(bh, AuditRow, AuditRow.action == "billing.stars_paid") == 1
    assert await _count(bh, PaymentInboxRow, PaymentInboxRow.status == "done") == 1
    assert (await bh.app.billing.inbox_figures()).pending == 0


async def test_a_redelivery_before_the_retry_grants_once(bh: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = await _invoice(bh)
    _fail_once(bh, monkeypatch, "_apply_tier")
    await bh.pay(payload, 1500, charge_id="ch_twice")
    redelivered = await bh.pay(payload, 1500, charge_id="ch_twice")
    assert ACTIVATED in _texts(redelivered)
    assert await bh.app.billing.retry_inbox(utcnow() + timedelta(hours=2)) == 0
    assert await _count(bh, PaymentRow) == 1 and await _count(bh, SubscriptionRow) == 1
    assert await _count(bh, PaymentInboxRow) == 1


async def test_a_payment_that_cannot_be_stored_is_not_acknowledged(
    bh: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Storing is retried briefly; then the exception escapes the dispatcher: the webhook answers 500 and
    Telegram delivers it again."""
    monkeypatch.setattr(payments, "RECEIVE_RETRIES", (0.0, 0.0))
    payload = await _invoice(bh)
    attempts = _fail_once(bh, monkeypatch, "receive_stars")  # a blip: the second attempt stores it
    assert ACTIVATED in _texts(await bh.pay(payload, 1500, charge_id="ch_blip")) and len(attempts) == 2
    down = _fail_times(bh, monkeypatch, "receive_stars", 3)
    with pytest.raises(OperationalError):
        await bh.pay(payload, 1500, charge_id="ch_retry")
    assert len(down) == 3 and await _count(bh, PaymentInboxRow, PaymentInboxRow.charge_id == "ch_retry") == 0
    assert ACTIVATED in _texts(await bh.pay(payload, 1500, charge_id="ch_retry"))  # Telegram's redelivery
    assert await _count(bh, PaymentRow) == 2


async def test_a_failing_pre_checkout_is_still_answered(bh: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    payload = await _invoice(bh)

    def broken(*_args: Any) -> str | None:
        raise RuntimeError("tiers table unreadable")

    monkeypatch.setattr(bh.app.billing, "check_pre_checkout", broken)
    calls = await bh.pre_checkout(payload, 1500)
    answer = next(c for c in calls if c.method == "answerPreCheckoutQuery")
    assert answer.params["ok"] in (False, "false") and "nothing was charged" in answer.params["error_message"]


async def test_a_failed_refund_is_kept_and_revokes_the_plan_on_retry(
    bh: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same class: a refunded_payment whose handling failed was swallowed, and the refunded user kept the plan."""
    payload = await _invoice(bh)
    assert ACTIVATED in _texts(await bh.pay(payload, 1500, charge_id="ch_back"))
    _fail_once(bh, monkeypatch, "_apply_tier")
    assert "refunded" not in _texts(await bh.refunded(payload, 1500, charge_id="ch_back"))
    assert (await bh.stored_user(PAYER)).tier == "pro"  # type: ignore[union-attr]
    async with bh.app.sessionmaker() as session:
        row = (await session.scalars(select(PaymentInboxRow).where(PaymentInboxRow.kind == "refunded"))).one()
    assert (row.charge_id, row.status, row.attempts) == ("ch_back", "pending", 1)
    assert row.raw["message"]["refunded_payment"]["telegram_payment_charge_id"] == "ch_back"

    assert await bh.app.billing.retry_inbox(utcnow() + timedelta(minutes=5)) == 1
    await bh.app.drain_outbox(bh.bot)
    assert (await bh.stored_user(PAYER)).tier == "free"  # type: ignore[union-attr]
    assert await _count(bh, AuditRow, AuditRow.action == "billing.refunded") == 1
    assert sum("was refunded" in c.text for c in bh.telegram.calls if c.method == "sendMessage") == 1
    assert await bh.refunded(payload, 1500, charge_id="ch_back") == []  # redelivered: nothing more
    assert await bh.app.billing.retry_inbox(utcnow() + timedelta(hours=2)) == 0
    assert await _count(bh, PaymentInboxRow, PaymentInboxRow.status == "pending") == 0


async def test_a_refund_waits_for_its_payment_still_in_the_inbox(
    bh: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = await _invoice(bh)
    _fail_once(bh, monkeypatch, "_apply_tier")
    await bh.pay(payload, 1500, charge_id="ch_order")  # not applied yet
    await bh.refunded(payload, 1500, charge_id="ch_order")  # the refund arrives before the retry
    assert await bh.app.billing.retry_inbox(utcnow() + timedelta(minutes=5)) == 2  # the payment, then its refund
    assert (await bh.stored_user(PAYER)).tier == "free"  # type: ignore[union-attr]
    assert await _count(bh, PaymentRow, PaymentRow.status == "refunded") == 1
