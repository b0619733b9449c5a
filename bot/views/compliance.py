"""/compliance: disclosures and consent, data export and deletion, the user's own activity."""

from __future__ import annotations

from aiogram import html
from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import gettext as _

from bot.i18n import N_
from bot.views import View
from bot.views.common import Button, keyboard
from domain.audit import AuditEntry
from domain.compliance import CURRENT, ConsentStatus, Document, Erasure

DOCUMENT_NAMES = {
    Document.RISK: N_("Risk disclosure"),
    Document.TERMS: N_("Terms of service"),
    Document.PRIVACY: N_("Privacy policy"),
}

# The texts, per document AND version: a new version is a new entry here plus a new CURRENT in the domain.
TEXTS: dict[tuple[Document, str], str] = {
    (Document.RISK, "2026-11"): N_(
        "Trading foreign exchange and CFDs on margin carries a high level of risk and may not be suitable for "
        "everyone. Leverage can work against you as well as for you: you can lose more than your deposit. "
        "AI signals and consensus are statistical estimates, not advice and not a promise of profit; past results "
        "do not guarantee future ones. Automated trading can place orders while you are away. Trade only with "
        "money you can afford to lose, and use the demo account first."
    ),
    (Document.TERMS, "2026-11"): N_(
        "Hybrid Trader is a software tool. You keep control of your broker account and are responsible for the "
        "orders placed from it. Subscriptions renew each period until cancelled; you can cancel at any time in "
        "/billing. We may suspend accounts that abuse the service. The service is provided as is, without a "
        "guarantee of availability or results."
    ),
    (Document.PRIVACY, "2026-11"): N_(
        "We store your Telegram id, name, username and language, your settings, your trading accounts (passwords "
        "encrypted), orders, alerts, usage counts, support tickets and feedback, and payment records. We use them "
        "only to run the service. You can download all of it or delete it at any time in /compliance. Payment "
        "records are kept as long as tax law requires."
    ),
}


class ComplianceCB(CallbackData, prefix="cmp"):
    action: str  # home, doc, accept, export, delete, erase, activity
    value: str = ""


def document_name(doc: Document) -> str:
    return _(DOCUMENT_NAMES[doc])


def compliance_home(status: ConsentStatus) -> View:
    lines = [_("<b>📜 Compliance and your data</b>"), ""]
    for doc in Document:
        consent = status.accepted.get(doc)
        if status.current(doc) and consent is not None:
            state = _("✅ accepted on {date}").format(date=consent.accepted_at.strftime("%Y-%m-%d"))
        elif consent is not None:
            state = _("⚠️ you accepted version {old}; please review the new one").format(old=consent.version)
        else:
            state = _("❌ not accepted yet")
        lines.append(
            _("{name} (version {version}): {state}").format(name=document_name(doc), version=CURRENT[doc], state=state)
        )
    lines += [
        "",
        _("Orders and live accounts: {state}").format(
            state=_("unlocked") if status.trading_unlocked else _("locked until you accept the risk disclosure")
        ),
    ]
    buttons: list[Button] = [(document_name(doc), ComplianceCB(action="doc", value=doc.value)) for doc in Document]
    buttons += [
        (_("📦 Download my data"), ComplianceCB(action="export")),
        (_("🕘 My activity"), ComplianceCB(action="activity")),
        (_("🗑 Delete my data"), ComplianceCB(action="delete")),
    ]
    return "\n".join(lines), keyboard(buttons, [3, 2, 1])


def document_view(doc: Document, status: ConsentStatus) -> View:
    version = CURRENT[doc]
    lines = [
        f"<b>{document_name(doc)}</b> · " + _("version {version}").format(version=version),
        "",
        _(TEXTS[(doc, version)]),
    ]
    buttons: list[Button] = []
    if status.current(doc):
        lines += ["", _("✅ You accepted this version.")]
    else:
        buttons.append((_("✅ I accept"), ComplianceCB(action="accept", value=doc.value)))
    buttons.append((_("« Back"), ComplianceCB(action="home")))
    return "\n".join(lines), keyboard(buttons, 1)


def disclosure_gate() -> View:
    """What moving money or linking an account answers until the current risk disclosure is accepted."""
    version = CURRENT[Document.RISK]
    text = "\n".join(
        [
            _("<b>⚠️ Please read before trading</b>"),
            "",
            _(TEXTS[(Document.RISK, version)]),
            "",
            _(
                "Orders, closing positions, auto-trading and linking a live account unlock once you accept this "
                "risk disclosure (version {version}); quotes, charts, alerts and analyses work without it."
            ).format(version=version),
        ]
    )
    return text, keyboard([(_("✅ I accept"), ComplianceCB(action="accept", value=Document.RISK.value))], 1)


def accepted(doc: Document, status: ConsentStatus) -> View:
    text = _("✅ Thank you: {name} (version {version}) accepted.").format(name=document_name(doc), version=CURRENT[doc])
    if doc == Document.RISK and status.trading_unlocked:
        text += "\n" + _("Orders, auto-trading and live accounts are unlocked.")
    return text, keyboard([(_("« Back"), ComplianceCB(action="home"))])


def export_caption() -> str:
    return _("📦 Everything we store about you, as JSON. Keep it private: it includes your account details.")


def delete_confirm() -> View:
    text = "\n".join(
        [
            _("<b>🗑 Delete my data</b>"),
            "",
            _(
                "This deletes, for good: your name, username, language and settings, your support tickets and "
                "feedback, your consents, your trading accounts, orders and alerts, and your usage history."
            ),  # fmt: skip
            "",
            _(
                "What the law makes us keep: your payment records (amounts, dates and receipt ids) and your "
                "subscription record, for tax and accounting, plus the security log of actions on your account. "
                "They stay linked only to your numeric Telegram id, without your name."
            ),  # fmt: skip
            "",
            _(
                "Afterwards you start fresh, as a new user (a paid plan stays active until it ends). This cannot be undone."
            ),
        ]
    )
    buttons: list[Button] = [
        (_("🗑 Yes, delete my data"), ComplianceCB(action="erase")),
        (_("« Keep my data"), ComplianceCB(action="home")),
    ]
    return text, keyboard(buttons, 1)


def erased(erasure: Erasure) -> str:
    lines = [_("✅ Your personal data has been deleted. You start fresh: send /start whenever you like.")]
    if erasure.kept:
        lines.append(_("Kept as the law requires: {what}.").format(what=", ".join(sorted(erasure.kept))))
    return "\n".join(lines)


def activity_view(entries: list[AuditEntry], user_id: int) -> View:
    lines = [_("<b>🕘 Your activity</b>")]
    if not entries:
        lines.append(_("Nothing recorded yet."))
    for e in entries:
        when = e.at.strftime("%Y-%m-%d %H:%M") if e.at else "—"
        by = "" if e.actor_id == user_id else (_(" (by support)") if e.actor_id is not None else _(" (automatic)"))
        lines.append(f"• {when} <code>{html.quote(e.action)}</code>{by} · {e.surface}")
    return "\n".join(lines), keyboard([(_("« Back"), ComplianceCB(action="home"))])
