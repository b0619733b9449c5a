"""Plans, subscription, billing history, referral card, and the chat notices billing sends.

The consumer payments policy (domain/billing/storefront.py): inside the chat plans are sold for
Telegram Stars only. No view here shows a card button or a Stripe URL; with the operator's card
page switched on, /premium and /billing show one link to that page (``card_page``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from urllib.parse import quote_plus

from aiogram import html
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import I18n, gettext as _, ngettext

from bot.callbacks import CallbackInt
from bot.i18n import N_
from bot.notify import Notifier
from bot.views import View
from bot.views.common import feature_name, price, quota_name, tier_name
from bot.views.plans import limits_line
from domain.billing.model import (
    PACK_SIZE,
    PACK_STARS,
    REWARD_DAYS,
    TRIAL_DAYS,
    TRIAL_TIER,
    Notice,
    NoticeKind,
    Overview,
    Payment,
    Rail,
    ReferralStats,
    Status,
    Subscription,
)
from domain.db.uow import UnitOfWork
from domain.tiers import Quota, Tier, TierCatalog

log = logging.getLogger(__name__)

PREFIX = "bill"


class BillCB(CallbackData, prefix=PREFIX):
    # trial | plan | stars | pack | cancel | cancelok | resume | history; card and portal: buttons of old
    # messages (no view makes them any more), answered with the policy
    action: str
    tier: str = ""
    sub: CallbackInt = 0


STATUS_NAMES = {
    Status.TRIALING: N_("trial"),
    Status.ACTIVE: N_("active"),
    Status.PAST_DUE: N_("payment overdue"),
    Status.CANCELED: N_("canceled"),
    Status.EXPIRED: N_("expired"),
}
RAIL_NAMES = {
    Rail.STRIPE: N_("card (Stripe)"),
    Rail.STARS: N_("Telegram Stars"),
    Rail.TRIAL: N_("free trial"),
    Rail.REFERRAL: N_("referral reward"),
}
PRECHECKOUT_ERRORS = {
    "payload": N_("This invoice isn't valid for your account. Open a fresh one from /premium."),
    "plan": N_("This plan is no longer offered. Open /premium for the current plans."),
    "price": N_("The price has changed. Open a fresh invoice from /premium."),
}

Row = Sequence[tuple[str, CallbackData | str]]


def markup(rows: Iterable[Row]) -> InlineKeyboardMarkup | None:
    """Rows of buttons: a CallbackData is a callback button, an https:// string a link."""
    built = [
        [
            InlineKeyboardButton.model_construct(text=text, url=data)
            if isinstance(data, str) and data.startswith("https://")
            else InlineKeyboardButton.model_construct(
                text=text, callback_data=data.pack() if isinstance(data, CallbackData) else data
            )
            for text, data in row
        ]
        for row in rows
        if row
    ]
    return InlineKeyboardMarkup.model_construct(inline_keyboard=built) if built else None


def day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "—"


def bar(used: int, limit: int, width: int = 10) -> str:
    filled = 0 if limit <= 0 else min(width, round(width * used / limit))
    return "▓" * filled + "░" * (width - filled)


def money(amount: int, currency: str) -> str:
    if currency == "XTR":
        return _("{n} ⭐").format(n=amount)
    return f"{amount / 100:.2f} {html.quote(currency)}"


def _sub_line(sub: Subscription) -> str:
    line = _("{tier} · {status} · {rail}").format(
        tier=tier_name(sub.tier), status=_(STATUS_NAMES[sub.status]), rail=_(RAIL_NAMES[sub.rail])
    )
    if sub.status == Status.PAST_DUE:
        return line + " · " + _("grace until {date}").format(date=day(sub.grace_until))
    if sub.cancel_at_period_end:
        return line + " · " + _("ends {date}").format(date=day(sub.current_period_end))
    if sub.rail in (Rail.STRIPE, Rail.STARS):
        return line + " · " + _("renews {date}").format(date=day(sub.current_period_end))
    return line + " · " + _("until {date}").format(date=day(sub.current_period_end))


def _upgrade_rows(tiers: TierCatalog, current: Tier) -> list[Row]:
    higher = [
        (_("⬆️ {tier}").format(tier=tier_name(t.code)), BillCB(action="plan", tier=t.code))
        for t in tiers
        if t.rank > current.rank
    ]
    return [higher] if higher else []


def subscription_view(overview: Overview, tier: Tier, tiers: TierCatalog, usage: dict[Quota, int]) -> View:
    lines = [_("<b>💳 Your subscription</b>"), ""]
    lines.append(_("Plan: <b>{tier}</b>").format(tier=tier_name(tier.code)))
    current = overview.current
    if current is None:
        lines.append(_("Status: free plan, no subscription"))
    else:
        lines.append(_("Status: {line}").format(line=_sub_line(current)))
    lines += ["", _("<b>Usage</b>")]
    for quota in Quota:
        limit = tier.quota(quota)
        if quota in usage:
            used = usage[quota]
            lines.append(f"{quota_name(quota)}: {bar(used, limit)} {used} / {limit}")
        else:
            lines.append(_("{quota}: up to {limit}").format(quota=quota_name(quota), limit=limit))
    if overview.credits:
        lines.append(_("Extra AI analyses from packs: {n}").format(n=overview.credits))
    rows: list[Row] = _upgrade_rows(tiers, tier)
    if overview.trial_available and tier.rank < tiers.get(TRIAL_TIER).rank:
        rows.insert(
            0,
            [
                (
                    _("🎁 Start {days}-day {tier} trial").format(days=TRIAL_DAYS, tier=tier_name(TRIAL_TIER)),
                    BillCB(action="trial"),
                )
            ],
        )
    manage = [s for s in overview.subscriptions if s.rail in (Rail.STRIPE, Rail.STARS)]
    if any(not s.cancel_at_period_end for s in manage):
        rows.append([(_("⬇️ Downgrade to Free at period end"), BillCB(action="history"))])
    rows.append([(_("🧾 Billing"), BillCB(action="history"))])
    return "\n".join(lines), markup(rows)


PAYMENT_STATUS = {"paid": N_("paid"), "failed": N_("failed"), "refunded": N_("refunded")}


def short_charge(charge_id: str) -> str:
    """A charge id short enough for a line, still recognisable to support (its start and end)."""
    return charge_id if len(charge_id) <= 16 else f"{charge_id[:8]}…{charge_id[-6:]}"


def payment_line(p: Payment) -> str:
    """One payment: date, rail, what, amount, status and the charge id shortened."""
    what = tier_name(p.tier) if p.tier else (_("AI analyses pack") if p.kind == "pack" else "—")
    return _("{date} · {rail} · {what} · {amount} · {status}").format(
        date=day(p.created_at), rail=_(RAIL_NAMES.get(p.rail, p.rail.value)), what=what,
        amount=money(p.amount, p.currency), status=_(PAYMENT_STATUS[p.status]) if p.status in PAYMENT_STATUS else p.status,
    ) + f" · <code>{html.quote(short_charge(p.charge_id))}</code>"  # fmt: skip


def billing_view(overview: Overview, card_page: str | None = None) -> View:
    """History and renewal management; a card subscriber's card and invoices only through ``card_page``."""
    lines = [_("<b>🧾 Billing</b>"), ""]
    if overview.subscriptions:
        lines.append(_("<b>Subscriptions</b>"))
        lines += [_sub_line(s) for s in overview.subscriptions]
    else:
        lines.append(_("No active subscription."))
    lines += ["", _("<b>Payments</b>")]
    if not overview.payments:
        lines.append(_("No payments yet."))
    for p in overview.payments:
        status = {"paid": _("paid"), "failed": _("failed"), "refunded": _("refunded")}.get(p.status, p.status)
        what = tier_name(p.tier) if p.tier else (_("AI analyses pack") if p.kind == "pack" else "—")
        lines.append(
            _("{date} · {rail} · {what} · {amount} · {status}").format(
                date=day(p.created_at),
                rail=_(RAIL_NAMES[p.rail]),
                what=what,
                amount=money(p.amount, p.currency),
                status=status,
            )
        )
        if p.rail == Rail.STARS:
            lines.append(f"  <code>{html.quote(p.charge_id)}</code>")
    rows: list[Row] = []
    for sub in overview.subscriptions:
        if sub.rail not in (Rail.STRIPE, Rail.STARS):
            continue
        if sub.cancel_at_period_end:
            rows.append([(_("▶️ Resume {tier}").format(tier=tier_name(sub.tier)), BillCB(action="resume", sub=sub.id))])
        else:
            rows.append(
                [(_("⏹ Cancel {tier} renewal").format(tier=tier_name(sub.tier)), BillCB(action="cancel", sub=sub.id))]
            )
    if card_page and any(s.rail == Rail.STRIPE and s.customer_id for s in overview.subscriptions):
        rows.append([(_("🌐 Card and invoices on our website"), card_page)])
    rows.append([(_("💎 Plans"), BillCB(action="plan"))])
    return "\n".join(lines), markup(rows)


def cancel_confirm_view(sub: Subscription) -> View:
    text = _(
        "Cancel the {tier} renewal? You keep {tier} until {date}, then move to Free. You can resume before then."
    ).format(tier=tier_name(sub.tier), date=day(sub.current_period_end))
    return text, markup(
        [[(_("Yes, cancel renewal"), BillCB(action="cancelok", sub=sub.id)), (_("Keep it"), BillCB(action="history"))]]
    )


def premium_view(
    tiers: TierCatalog,
    current: Tier,
    overview: Overview,
    usage: dict[Quota, int],
    focus: str = "",
    *,
    packs: bool = False,
    card_page: str | None = None,
) -> View:
    """The plans, sold for Stars; ``card_page``: the operator's web page link (the only card route)."""
    paid = [t for t in tiers if t.is_paid and (not focus or t.code == focus)]
    lines = [_("<b>💎 Premium</b>"), ""]
    for quota in Quota:
        cells = " | ".join(f"{tier_name(t.code)} {t.quota(quota)}" for t in tiers)
        lines.append(f"<b>{quota_name(quota)}</b>: {cells}")
    lines.append(
        _("<b>requests/min</b>: {cells}").format(
            cells=" | ".join(f"{tier_name(t.code)} {t.rate_per_minute}" for t in tiers)
        )
    )
    lines += ["", _("<b>Your live numbers</b>")]
    used = usage.get(Quota.AI_PER_DAY, 0)
    lines.append(
        _("AI analyses today: {used} of {limit} on {tier}.").format(
            used=used, limit=current.quota(Quota.AI_PER_DAY), tier=tier_name(current.code)
        )
    )
    for tier in paid:
        if tier.rank > current.rank:
            lines.append(
                _("On {tier} the same day would use {used} of {limit}.").format(
                    tier=tier_name(tier.code), used=used, limit=tier.quota(Quota.AI_PER_DAY)
                )
            )
    for tier in paid:
        added = sorted(tier.features - current.features)
        if added and tier.rank > current.rank:
            lines += ["", f"<b>{tier_name(tier.code)}</b> — {price(tier)}", limits_line(tier)]
            lines.append(_("Unlocks: {features}").format(features=", ".join(feature_name(f) for f in added)))
    rows: list[Row] = []
    if overview.trial_available and current.rank < tiers.get(TRIAL_TIER).rank:
        rows.append(
            [
                (
                    ngettext("🎁 Try {tier} free for {days} day", "🎁 Try {tier} free for {days} days", TRIAL_DAYS).format(
                        tier=tier_name(TRIAL_TIER), days=TRIAL_DAYS),
                    BillCB(action="trial"),
                )
            ]
        )
    for tier in paid:
        if tier.rank <= current.rank:
            continue
        rows.append(
            [
                (
                    _("⭐ {tier} · {stars} Stars").format(tier=tier_name(tier.code), stars=tier.price_stars),
                    BillCB(action="stars", tier=tier.code),
                )
            ]
        )
    if packs:
        rows.append(
            [
                (
                    ngettext("⭐ {n} extra AI analysis · {stars} Stars", "⭐ {n} extra AI analyses · {stars} Stars",
                             PACK_SIZE).format(n=PACK_SIZE, stars=PACK_STARS),
                    BillCB(action="pack"),
                )
            ]
        )
    if card_page and any(t.rank > current.rank for t in paid):
        rows.append([(_("🌐 Other ways to pay on our website"), card_page)])
    if not any(t.rank > current.rank for t in paid):
        lines += ["", _("You're on the top plan. Thank you!")]
    return "\n".join(lines), markup(rows)


def pay_link_view(url: str, *, stars: int, tier: str | None) -> View:
    """A Telegram Stars invoice link (the only way to pay inside the chat)."""
    what = tier_name(tier) if tier else ngettext("{n} extra AI analysis", "{n} extra AI analyses", PACK_SIZE).format(n=PACK_SIZE)
    text = _(
        "Your invoice for {what} is ready: {stars} ⭐. The plan renews every 30 days until you cancel."
    ).format(what=what, stars=stars)
    if tier is None:
        text = _("Your invoice for {what} is ready: {stars} ⭐, a one-off purchase.").format(what=what, stars=stars)
    return text, markup([[(_("Pay {stars} ⭐").format(stars=stars), url)]])


def card_elsewhere_view(card_page: str | None) -> View:
    """An old card or portal button pressed: in Telegram plans are sold for Stars; cards only on the web page."""
    lines = [_("In Telegram, plans are sold for Telegram Stars ⭐: /premium has them.")]
    rows: list[Row] = []
    if card_page:
        lines.append(_("Card payments and card subscriptions are handled on our website."))
        rows.append([(_("🌐 Open our website"), card_page)])
    else:
        lines.append(_("A card subscription you already have keeps renewing; cancel or resume it in /billing."))
    rows.append([(_("💎 Plans"), BillCB(action="plan"))])
    return "\n".join(lines), markup(rows)


def referral_view(stats: ReferralStats, link: str) -> View:
    share_text = _("Trade smarter with Hybrid Trader, the AI assistant for MetaTrader 5")
    share = f"https://t.me/share/url?url={quote_plus(link)}&text={quote_plus(share_text)}"
    lines = [
        _("<b>🤝 Invite friends</b>"),
        "",
        _("Your link: {link}").format(link=html.quote(link)),
        "",
        ngettext("When a friend you invite makes their first payment, you get {days} day of {tier}.",
                 "When a friend you invite makes their first payment, you get {days} days of {tier}.",
                 REWARD_DAYS).format(
            days=REWARD_DAYS, tier=tier_name("pro")
        ),
        "",
        _("Invited: {n}").format(n=stats.invited),
        _("Paid (converted): {n}").format(n=stats.converted),
        ngettext("Rewards earned: {days} day of {tier}", "Rewards earned: {days} days of {tier}",
                 stats.reward_days).format(days=stats.reward_days, tier=tier_name("pro")),
        _("Pending (not paid yet): {n}").format(n=stats.pending),
    ]
    return "\n".join(lines), markup([[(_("📤 Share link"), share)]])


def refund_done(notices: Sequence[Notice], charge_id: str) -> str:
    return (
        _("Refunded {charge}. The user has been told.").format(charge=html.quote(charge_id))
        if notices
        else _("Nothing changed.")
    )


def precheckout_error(reason: str) -> str:
    return _(PRECHECKOUT_ERRORS.get(reason, PRECHECKOUT_ERRORS["payload"]))


def precheckout_failed(ref: str) -> str:
    return _(
        "We couldn't check this payment just now, so nothing was charged. Please try again in a minute (ref {ref})."
    ).format(ref=html.quote(ref))


def notice_text(notice: Notice) -> str:
    p = notice.params
    tier = tier_name(str(p.get("tier") or "free"))
    until = day(p.get("until"))
    kind = notice.kind
    if kind == NoticeKind.TRIAL_STARTED:
        return _("🎁 Your {tier} trial is on until {date}. Everything in {tier} is open now.").format(
            tier=tier, date=until
        )
    if kind == NoticeKind.ACTIVATED:
        return _("✅ Payment received: you're on {tier} until {date}. Enjoy!").format(tier=tier, date=until)
    if kind == NoticeKind.RENEWED:
        return _("🔄 {tier} renewed until {date}. Thank you!").format(tier=tier, date=until)
    if kind == NoticeKind.PAYMENT_FAILED:
        if p.get("rail") == Rail.STRIPE.value:
            return _(
                "⚠️ Your {tier} card payment failed. You keep {tier} until {date}; check your card with your bank, "
                "or ask /paysupport."
            ).format(tier=tier, date=until)
        return _(
            "⚠️ Your {tier} renewal in Telegram Stars didn't go through. You keep {tier} until {date}; top up your "
            "Stars, then renew it in /premium."
        ).format(tier=tier, date=until)
    if kind == NoticeKind.DOWNGRADED:
        return _("Your {tier} subscription has ended; you're on the {now} plan now. /premium shows the plans.").format(
            tier=tier, now=tier_name(str(p.get("now_tier") or "free"))
        )
    if kind == NoticeKind.CANCELED:
        return _("⏹ {tier} won't renew. You keep it until {date}.").format(tier=tier, date=until)
    if kind == NoticeKind.RESUMED:
        return _("▶️ {tier} will renew again.").format(tier=tier)
    if kind == NoticeKind.TRIAL_ENDING:
        return _("⏳ Your {tier} trial ends on {date}. Subscribe in /premium to keep it.").format(tier=tier, date=until)
    if kind == NoticeKind.RENEWAL_SOON:
        return _("🔔 {tier} renews on {date}. Manage it in /billing.").format(tier=tier, date=until)
    if kind == NoticeKind.REFERRAL_REWARD:
        days = p.get("days", REWARD_DAYS)
        return ngettext("🎉 {friend} made their first payment: you get {days} day of {tier}, until {date}.",
                        "🎉 {friend} made their first payment: you get {days} days of {tier}, until {date}.",
                        int(days) if isinstance(days, (int, float)) else REWARD_DAYS).format(
            friend=html.quote(str(p.get("friend", ""))), days=days, tier=tier, date=until
        )  # fmt: skip
    if kind == NoticeKind.REFERRAL_THANKS:
        return _("🤝 Thanks for joining through {friend}'s link: they've earned a reward.").format(
            friend=html.quote(str(p.get("friend", "")))
        )
    if kind == NoticeKind.REFERRAL_REVOKED:
        days = int(p.get("days", REWARD_DAYS))
        taken = ngettext(
            "↩️ A payment that earned you {days} day of {tier} was refunded, so that reward is taken back.",
            "↩️ A payment that earned you {days} days of {tier} was refunded, so that reward is taken back.",
            days,
        ).format(days=days, tier=tier)
        if p.get("until"):
            return taken + " " + _("Your referral {tier} now runs until {date}.").format(tier=tier, date=until)
        return taken + " " + _("Your referral {tier} has ended.").format(tier=tier)
    if kind == NoticeKind.PAYMENT_PROCESSING:
        return _(
            "⏳ We received your payment and are activating it. It can take a few minutes; "
            "we'll message you as soon as it's done. Nothing more to pay."
        )
    if kind == NoticeKind.REFUNDED:
        return _("↩️ Your payment of {amount} ⭐ was refunded.").format(amount=p.get("amount", 0))
    n = p.get("n", 0)
    return ngettext("➕ {n} AI analysis added; you have {balance} extra now.",
                    "➕ {n} AI analyses added; you have {balance} extra now.",
                    int(n) if isinstance(n, (int, float)) else 0).format(n=n, balance=p.get("balance", 0))  # fmt: skip


def notice_key(notice: Notice, origin: str) -> str:
    """The outbox key of a notice: its user, kind and facts, plus the transaction that caused it."""
    facts = json.dumps(notice.params, sort_keys=True, default=str)
    digest = hashlib.sha256(f"{origin}|{facts}".encode()).hexdigest()[:24]
    return f"billing:{notice.user_id}:{notice.kind.value}:{digest}"


class NoticeOutbox:
    """``BillingService.announce``: queues each notice, in its user's language, in the transaction of the
    change that caused it, so it goes out exactly when that change commits; a blocked user doesn't stop
    the rest."""

    def __init__(self, notifier: Callable[[], Notifier | None], i18n: I18n) -> None:
        self._notifier, self._i18n = notifier, i18n

    async def __call__(self, uow: UnitOfWork, notices: list[Notice]) -> None:
        notifier = self._notifier()
        if notifier is None:
            return
        origin = secrets.token_hex(8)  # one per transaction: its commit, not the key, makes the notice once
        for notice in notices:
            with self._i18n.context(), self._i18n.use_locale(notice.locale):
                text = notice_text(notice)
            if not await notifier.send(notice.user_id, text, key=notice_key(notice, origin), within=uow):
                log.info("billing notice %s not queued: user %s blocked the bot", notice.kind.value, notice.user_id)


def invoice_texts(tier: str | None) -> tuple[str, str]:
    """Title and description of a Stars invoice."""
    if tier is None:
        return (
            ngettext("{n} AI analysis", "{n} AI analyses", PACK_SIZE).format(n=PACK_SIZE),
            ngettext("{n} extra AI analysis on top of your daily quota. It doesn't expire.",
                     "{n} extra AI analyses on top of your daily quota. They don't expire.", PACK_SIZE).format(
                n=PACK_SIZE),
        )
    return (
        _("Hybrid Trader {tier}").format(tier=tier_name(tier)),
        _("{tier} plan for 30 days, renewed monthly in Telegram Stars until you cancel.").format(tier=tier_name(tier)),
    )


def refund_usage() -> str:
    return _("Usage: /refund CHARGE_ID (the charge id is listed in the user's /billing).")
