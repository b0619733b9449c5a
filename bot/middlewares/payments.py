"""The payment inbox at the edge of the chain: a Stars payment is stored before it is handled.

Outside the error layer (which answers and swallows every failure), so:

* a ``successful_payment`` is written to the payment inbox (raw update, charge id unique) in its own
  committed transaction first. If that fails the exception escapes: the webhook answers 500 and
  Telegram redelivers; nothing was acknowledged. Then the update is handled as usual; when handling
  did not apply the payment (a database error, a bug, a rate limit), the payer is told it is being
  processed and the scheduler's job retries it until it is applied (``BillingService.retry_inbox``),
  once: the charge id is unique in ``payments``. The plan's own notice tells them when it is done.
* a ``refunded_payment`` the same way (without telling anyone: the refund notice comes when it is applied),
  so a refund made in Telegram always revokes what the payment bought.
* a ``pre_checkout_query`` whose handling failed is still answered (refused, with the error's
  reference): Telegram otherwise leaves the payer waiting until it times out. Nothing is charged then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.types import Message, TelegramObject, Update
from aiogram.utils.i18n import I18n

from bot.errors import Report
from bot.i18n import locale_of
from bot.views.billing import precheckout_failed
from domain.billing.model import StarsPayment
from domain.billing.service import PAID, REFUNDED, BillingService

log = logging.getLogger(__name__)

RECEIVE_RETRIES = (0.5, 1.0, 2.0)  # seconds between attempts to store a received payment
ERROR_REPORT = "error_report"  # where the error layer leaves its report (bot/middlewares/errors.py)


def _payment(message: Message) -> tuple[str, StarsPayment] | None:
    """A successful or refunded Stars payment in a service message, as the inbox stores it."""
    if (paid := message.successful_payment) is not None:
        expires = paid.subscription_expiration_date
        return PAID, StarsPayment(
            charge_id=paid.telegram_payment_charge_id, payload=paid.invoice_payload, currency=paid.currency,
            total_amount=paid.total_amount, is_recurring=bool(paid.is_recurring),
            is_first_recurring=bool(paid.is_first_recurring),
            expires_at=datetime.fromtimestamp(expires, UTC) if expires else None,
        )  # fmt: skip
    if (refund := message.refunded_payment) is not None:
        return REFUNDED, StarsPayment(
            charge_id=refund.telegram_payment_charge_id, payload=refund.invoice_payload, currency=refund.currency,
            total_amount=refund.total_amount, is_recurring=False, is_first_recurring=False, expires_at=None,
        )  # fmt: skip
    return None


class PaymentInboxMiddleware(BaseMiddleware):
    def __init__(self, billing: BillingService, i18n: I18n) -> None:
        self._billing = billing
        self._i18n = i18n

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        if event.pre_checkout_query is not None:
            return await self._pre_checkout(handler, event, data)
        message = event.message
        received = _payment(message) if message is not None else None
        if message is None or message.from_user is None or received is None:
            return await handler(event, data)
        kind, payment = received
        payer = message.from_user.id
        await self._receive(payer, payment, event.model_dump(mode="json", exclude_none=True), kind)
        result = await handler(event, data)
        if await self._billing.stars_pending(payment.charge_id, kind):
            report: Report | None = data.get(ERROR_REPORT)
            error = f"{report.code} {report.ref}" if report is not None else "not applied"
            log.warning("%s %s received but not applied (%s): queued for a retry", kind, payment.charge_id, error)
            await self._billing.stars_deferred(payer, payment.charge_id, error, kind=kind)
        return result

    async def _receive(self, payer: int, payment: StarsPayment, raw: dict[str, Any], kind: str) -> None:
        """Store it, retrying a failing database briefly: long polling has already moved past this update,
        so giving up here is the last chance. The final failure escapes (a webhook answers 500)."""
        for delay in (*RECEIVE_RETRIES, None):
            try:
                await self._billing.receive_stars(payer, payment, raw, kind)
                return
            except Exception:
                if delay is None:
                    log.error("%s %s of a user could NOT be stored; the update is not acknowledged", kind,
                              payment.charge_id, exc_info=True)  # fmt: skip
                    raise
                log.warning("storing %s %s failed; retrying in %.1fs", kind, payment.charge_id, delay, exc_info=True)
                await asyncio.sleep(delay)

    async def _pre_checkout(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: Update,
        data: dict[str, Any],
    ) -> Any:
        result = await handler(event, data)
        report: Report | None = data.get(ERROR_REPORT)
        if report is None:
            return result
        query = event.pre_checkout_query
        assert query is not None
        with self._i18n.context(), self._i18n.use_locale(locale_of(data.get("user"), query.from_user)):
            text = precheckout_failed(report.ref)
        bot: Bot = data["bot"]
        try:
            await bot.answer_pre_checkout_query(query.id, ok=False, error_message=text)
        except Exception:  # already answered, or Telegram failing: the query times out on its own
            log.warning("could not refuse pre-checkout query after error %s", report.ref, exc_info=True)
        return result
