"""/paysupport (payment help: the user's payments, refunds, a ticket about a payment) and /terms."""

from __future__ import annotations

from collections.abc import Sequence

from aiogram import html
from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import gettext as _

from bot.callbacks import CallbackInt
from bot.i18n import N_
from bot.views import View
from bot.views.billing import BillCB, day, money, payment_line
from bot.views.common import Button, keyboard
from bot.views.compliance import TEXTS, document_name
from bot.views.support import SupportCB, staff_new_ticket
from domain.billing.model import Payment
from domain.billing.storefront import Storefront
from domain.compliance import CURRENT, Document
from domain.support.tickets import Category, Ticket

PAYSUPPORT_PREFIX = "pys"
TERMS_PREFIX = "trm"
TICKET_BUTTONS = 5  # the most recent payments get a "ticket about this payment" button

REFUND_POLICY = N_(
    "Purchases made in this bot are handled by us, not by Telegram's support. If a payment didn't unlock "
    "what it should, or you paid by mistake, open a ticket about that payment within 14 days. A refund we "
    "approve goes back the way you paid: Telegram Stars to your Stars balance (Telegram's rules for Stars "
    "refunds apply), a card payment to your card. What the payment bought ends when it is refunded."
)


class PaySupportCB(CallbackData, prefix=PAYSUPPORT_PREFIX):
    action: str  # home | pick (a ticket about payment ``pay``)
    pay: CallbackInt = 0


class TermsCB(CallbackData, prefix=TERMS_PREFIX):
    doc: str  # terms | privacy | risk


def paysupport_view(payments: Sequence[Payment], storefront: Storefront) -> View:
    lines = [_("<b>🧾 Payment help</b>"), "", _("<b>Your recent payments</b>")]
    lines += [payment_line(p) for p in payments] or [_("No payments yet.")]
    lines += ["", _("<b>Refunds</b>"), _(REFUND_POLICY)]
    if storefront.support_contact:
        lines += ["", _("You can also write to {contact}.").format(contact=html.quote(storefront.support_contact))]
    buttons: list[Button] = [
        (
            _("🆘 About {date} · {amount}").format(date=day(p.created_at), amount=money(p.amount, p.currency)),
            PaySupportCB(action="pick", pay=p.id),
        )
        for p in payments[:TICKET_BUTTONS]
    ]
    buttons += [
        (_("💬 Another payment question"), SupportCB(action="cat", value=Category.BILLING.value)),
        (_("🧾 Billing"), BillCB(action="history")),
    ]
    if payments:
        lines += ["", _("Choose a payment below to open a ticket about it.")]
    return "\n".join(lines), keyboard(buttons, 1)


def describe_payment_prompt(payment: Payment) -> View:
    text = "\n".join(
        [
            _("🆘 A ticket about this payment:"),
            payment_line(payment),
            "",
            _("Tell us what went wrong in one message (a screenshot is welcome). /cancel to stop."),
        ]
    )
    return text, None


def staff_payment_ticket(ticket: Ticket, text: str, payment: Payment) -> View:
    """The staff's new-ticket message, with the payment the ticket is about."""
    body, markup = staff_new_ticket(ticket, text)
    return body + "\n\n" + _("💳 Payment: {payment}").format(payment=payment_line(payment)), markup


def terms_view(doc: Document, storefront: Storefront) -> View:
    """A document to read (accepting it is /compliance's): the terms link to the privacy policy and the
    risk disclosure, and back. A bot with its own terms text shows that one."""
    version = CURRENT[doc]
    own = storefront.terms_text if doc == Document.TERMS else None
    body = html.quote(own) if own else _(TEXTS[(doc, version)])
    lines = [f"<b>{document_name(doc)}</b> · " + _("version {version}").format(version=version), "", body, ""]
    if doc == Document.TERMS:
        lines.append(_("Payments inside Telegram are made in Telegram Stars. Payment help and refunds: /paysupport."))
    lines.append(_("Review or accept the documents in /compliance."))
    buttons: list[Button] = [(document_name(d), TermsCB(doc=d.value)) for d in Document if d != doc]
    return "\n".join(lines), keyboard(buttons, 2)
