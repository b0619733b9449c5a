"""Staff screens: user card, grants, roles, the admin dashboard."""

from __future__ import annotations

from aiogram import html
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.callbacks import CallbackInt
from bot.i18n import N_
from bot.views import View
from bot.views.common import Button, duration, keyboard, tier_name
from bot.views.status import ops_lines
from bot.views.support import STATUS_MARKS, category_name
from domain.admin import Dashboard, UserCard
from domain.audit import AuditEntry
from domain.broadcast import Broadcast, Delivery, Progress, Segment
from domain.users import LANGUAGES, Role, User

ROLE_NAMES = {Role.USER: N_("user"), Role.SUPPORT: N_("support"), Role.ADMIN: N_("admin")}


def role_name(role: Role) -> str:
    return _(ROLE_NAMES[role])


def _when(entry: AuditEntry) -> str:
    return entry.at.strftime("%Y-%m-%d %H:%M") if entry.at else "—"


def user_usage() -> str:
    return _("Usage: <code>/user 123456789</code> or <code>/user @username</code>")


def grant_usage() -> str:
    return _("Usage: <code>/grant &lt;id|@username&gt; &lt;free|basic|pro|enterprise&gt; &lt;days&gt;</code>")


def role_usage() -> str:
    return _("Usage: <code>/role &lt;id|@username&gt; &lt;user|support|admin&gt;</code>")


def user_card(card: UserCard) -> str:
    u = card.user
    name = html.quote(u.first_name) or "—"
    lines = [
        _("<b>👤 User {id}</b>").format(id=u.id),
        _("Name: {name} · @{username}").format(name=name, username=html.quote(u.username or "—")),
        _("Role: {role} · language: {lang} · time zone: {tz}").format(
            role=role_name(u.role), lang=u.locale, tz=u.timezone
        ),
        _("Plan: {tier} (stored {stored}, until {until})").format(
            tier=tier_name(card.effective_tier),
            stored=tier_name(u.tier),
            until=u.tier_expires_at.strftime("%Y-%m-%d") if u.tier_expires_at else "—",
        ),
        _("Joined {joined} · last seen {seen}").format(
            joined=u.created_at.strftime("%Y-%m-%d"), seen=u.last_seen_at.strftime("%Y-%m-%d %H:%M")
        ),
    ]
    if card.blocked:
        lines.append(_("⛔ Has blocked the bot"))
    lines += ["", _("<b>Subscriptions</b>")]
    lines += [
        f"• {tier_name(s.tier)} · {s.status} · {s.rail} · {s.period_end.strftime('%Y-%m-%d') if s.period_end else '—'}"
        for s in card.subscriptions
    ] or [_("none")]
    lines += ["", _("<b>Usage, 30 days</b>")]
    lines += [f"• {html.quote(k)}: {v}" for k, v in sorted(card.usage.items())] or [_("none")]
    lines += ["", _("<b>Recent activity</b>")]
    lines += [f"• {_when(e)} {html.quote(e.action)} ({e.surface})" for e in card.audit] or [_("none")]
    lines += ["", _("<b>Tickets</b>")]
    lines += [
        f"• {STATUS_MARKS[t.status]} #{t.id} {category_name(t.category)} — {html.quote(t.subject[:40])}"
        for t in card.tickets
    ] or [_("none")]
    return "\n".join(lines)


def granted(user: User) -> str:
    until = user.tier_expires_at.strftime("%Y-%m-%d %H:%M UTC") if user.tier_expires_at else "—"
    return _("✅ User {id} now has the {tier} plan until {until}. Recorded in the audit log.").format(
        id=user.id, tier=tier_name(user.tier), until=until
    )


def role_set(user: User) -> str:
    return _("✅ User {id} is now {role}. Their command menu is updated. Recorded in the audit log.").format(
        id=user.id, role=role_name(user.role)
    )


def dashboard(d: Dashboard) -> str:
    lines = [_("<b>📊 Admin dashboard</b>"), "", _("<b>Users</b>: {n}").format(n=d.total_users)]
    lines += [f"• {tier_name(code)}: {n}" for code, n in sorted(d.users_by_tier.items())]
    lines += [
        _("New: {d7} in 7 days · {d30} in 30 days").format(d7=d.new_7d, d30=d.new_30d),
        _("Active: {d7} in 7 days · {d30} in 30 days").format(d7=d.active_7d, d30=d.active_30d),
        _("Blocked the bot: {n}").format(n=d.blocked),
        "",
        _("<b>Revenue</b>"),
        _("MRR: ${usd} from {n} paying subscribers").format(usd=f"{d.mrr_cents / 100:.2f}", n=d.paying),
        _("Churn, 30 days: {pct} ({n} lapsed)").format(
            pct=f"{d.churn_30d * 100:.1f}%" if d.churn_30d is not None else "—", n=d.lapsed_30d
        ),
        "",
        _("<b>Errors, 7 days</b>"),
    ]
    lines += [f"• <code>{html.quote(code)}</code>: {n}" for code, n in d.errors_7d] or [_("none")]
    f = d.feedback
    lines += [
        "",
        _("<b>Support</b>"),
        _("Open tickets: {n}").format(n=d.open_tickets),
        _("Ratings: {n}, average {avg}").format(n=f.ratings, avg=f"{f.average:.2f}" if f.average is not None else "—"),
        " · ".join(f"{k}★ {v}" for k, v in sorted(f.by_rating.items())) or "—",
        _("Feature requests: {n}").format(n=f.requests),
    ]
    lines += [f"• {html.quote(t[:120])}" for t in f.recent_requests]
    if d.ops is not None:  # the same figures as /metrics and /status
        lines += ["", _("<b>Operations</b>"), *ops_lines(d.ops)]
        if d.ops.payments_waiting:  # staff only: payments taken and not applied yet (retried every 30 s)
            lines.append(
                _("⚠️ Payments received, not applied yet: {n}, oldest {age}").format(
                    n=d.ops.payments_waiting, age=duration(d.ops.payments_oldest_s or 0.0)
                )
            )
    return "\n".join(lines)


# --- /broadcast ---


class BroadcastCB(CallbackData, prefix="bc"):
    action: str  # skip, tier, lang, active, preview, send, cancel
    value: str = ""
    id: CallbackInt = 0


ACTIVE_CHOICES = (0, 7, 30, 90)


def broadcast_prompt() -> str:
    return _(
        "<b>📣 New broadcast</b>\nSend the message: text, or a photo with a caption (up to 1024 characters). /cancel to stop."
    )


def broadcast_button_prompt() -> View:
    text = _("Add a link button? Send <code>Label | https://example.com</code>, or skip.")
    return text, keyboard([(_("Skip"), BroadcastCB(action="skip"))])


def broadcast_segment(segment: Segment, audience: int) -> View:
    everyone = _("everyone")
    lines = [
        _("<b>📣 Who gets it?</b>"),
        _("Plan: {tier}").format(tier=tier_name(segment.tier) if segment.tier else everyone),
        _("Language: {lang}").format(lang=segment.language or everyone),
        ngettext("Active in the last {days} day", "Active in the last {days} days", segment.active_days).format(
            days=segment.active_days)
        if segment.active_days
        else _("Active: any time"),
        "",
        _("Recipients now: {n} (users who blocked the bot are skipped)").format(n=audience),
    ]
    tiers: list[Button] = [(("• " if segment.tier is None else "") + everyone, BroadcastCB(action="tier"))]
    tiers += [
        (("• " if segment.tier == code else "") + tier_name(code), BroadcastCB(action="tier", value=code))
        for code in ("free", "basic", "pro", "enterprise")
    ]
    langs: list[Button] = [(("• " if segment.language is None else "") + everyone, BroadcastCB(action="lang"))]
    langs += [
        (("• " if segment.language == code else "") + code, BroadcastCB(action="lang", value=code))
        for code in LANGUAGES
    ]
    active: list[Button] = [
        (
            ("• " if (segment.active_days or 0) == days else "")
            + (_("{n} d").format(n=days) if days else _("any time")),
            BroadcastCB(action="active", value=str(days)),
        )
        for days in ACTIVE_CHOICES
    ]
    buttons = [*tiers, *langs, *active, (_("👁 Preview"), BroadcastCB(action="preview"))]
    return "\n".join(lines), keyboard(buttons, [5, 4, 4, 1])


def broadcast_message(broadcast: Broadcast) -> tuple[str, InlineKeyboardMarkup | None]:
    """The message exactly as recipients get it (the admin's own words, escaped; the link button)."""
    markup = None
    if broadcast.button_text and broadcast.button_url:
        button = InlineKeyboardButton(text=broadcast.button_text, url=broadcast.button_url)
        markup = InlineKeyboardMarkup(inline_keyboard=[[button]])
    return html.quote(broadcast.text), markup


def broadcast_confirm(broadcast_id: int, audience: int) -> View:
    text = ngettext("☝️ This is how it will look. Send it to {n} user?",
                    "☝️ This is how it will look. Send it to {n} users?", audience).format(n=audience)  # fmt: skip
    buttons: list[Button] = [
        (_("✅ Send"), BroadcastCB(action="send", id=broadcast_id)),
        (_("✖️ Cancel"), BroadcastCB(action="cancel", id=broadcast_id)),
    ]
    return text, keyboard(buttons)


def broadcast_queued(progress: Progress) -> str:
    return ngettext("📣 Broadcast #{id} queued for {n} user. Progress will show here.",
                    "📣 Broadcast #{id} queued for {n} users. Progress will show here.", progress.total).format(
        id=progress.broadcast_id, n=progress.total
    )


def broadcast_cancelled() -> str:
    return _("Broadcast cancelled; nothing was sent.")


def broadcast_progress(progress: Progress, *, done: bool) -> str:
    lines = [
        (_("✅ Broadcast #{id} finished") if done else _("📣 Broadcast #{id} in progress")).format(
            id=progress.broadcast_id
        ),
        _("Delivered: {sent} of {total}").format(sent=progress.n(Delivery.SENT), total=progress.total),
        _("Blocked the bot (skipped): {n}").format(n=progress.n(Delivery.BLOCKED)),
        _("Failed: {n}").format(n=progress.n(Delivery.FAILED)),
    ]
    if progress.n(Delivery.UNKNOWN):
        lines.append(
            _("Unconfirmed after a restart (not resent, to avoid duplicates): {n}").format(
                n=progress.n(Delivery.UNKNOWN)
            )
        )
    if not done:
        lines.append(_("Waiting: {n}").format(n=progress.remaining))
    return "\n".join(lines)
