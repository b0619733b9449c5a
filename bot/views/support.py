"""/support and /tickets: ticket forms, threads, the staff queue and notifications."""

from __future__ import annotations

import re
from datetime import timedelta

from aiogram import html
from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import gettext as _, ngettext

from bot.callbacks import CallbackInt
from bot.i18n import N_
from bot.views import View
from bot.views.billing import payment_line
from bot.views.common import Button, keyboard
from domain.support.tickets import Category, QueueFilter, Status, Thread, Ticket

CATEGORY_NAMES = {
    Category.ACCOUNT: N_("👤 Account"),
    Category.BILLING: N_("💳 Billing and plans"),
    Category.TRADING: N_("📈 Trading"),
    Category.TECHNICAL: N_("🛠 Technical problem"),
    Category.OTHER: N_("💬 Something else"),
}
STATUS_NAMES = {
    Status.OPEN: N_("waiting for support"),
    Status.ANSWERED: N_("answered, waiting for you"),
    Status.CLOSED: N_("closed"),
}
PRIORITY_NAMES = {0: N_("standard"), 1: N_("priority"), 2: N_("high priority"), 3: N_("top priority")}
FILTER_NAMES = {QueueFilter.OPEN: N_("Open"), QueueFilter.MINE: N_("Mine"), QueueFilter.PRIORITY: N_("Paid plans")}
STATUS_MARKS = {Status.OPEN: "🟡", Status.ANSWERED: "🔵", Status.CLOSED: "⚪"}

# The ticket number in messages the bot sends: a Telegram reply to such a message continues that ticket.
TICKET_MARK = re.compile(r"🎫 ?#(\d{1,9})\b")


class SupportCB(CallbackData, prefix="sup"):
    action: str  # home, new, cat, list, view, reply, close
    value: str = ""
    id: CallbackInt = 0


class TicketsCB(CallbackData, prefix="tk"):
    action: str  # queue, view, take, reply, close, reopen, files
    id: CallbackInt = 0
    value: str = ""


def category_name(category: Category) -> str:
    return _(CATEGORY_NAMES[category])


def priority_name(priority: int) -> str:
    return _(PRIORITY_NAMES.get(max(0, min(priority, 3)), PRIORITY_NAMES[0]))


def within(delta: timedelta) -> str:
    hours = int(delta.total_seconds() // 3600)
    return ngettext("within {n} hour", "within {n} hours", hours).format(n=hours)


def support_home() -> View:
    text = "\n".join(
        [
            _("<b>🆘 Support</b>"),
            _("Open a ticket and our team answers here, in this chat. Paid plans are answered first."),
        ]
    )
    buttons: list[Button] = [
        (_("✍️ New ticket"), SupportCB(action="new")),
        (_("📋 My tickets"), SupportCB(action="list")),
    ]
    return text, keyboard(buttons)


def category_picker() -> View:
    buttons: list[Button] = [
        (_(name), SupportCB(action="cat", value=cat.value)) for cat, name in CATEGORY_NAMES.items()
    ]
    buttons.append((_("« Back"), SupportCB(action="home")))
    return _("What is it about?"), keyboard(buttons, 1)


def describe_prompt(category: Category) -> str:
    return _(
        "{category}: describe the problem in one message. You can attach a screenshot or a file "
        "(put the description in its caption). /cancel to stop."
    ).format(category=category_name(category))


def ticket_opened(ticket: Ticket) -> View:
    text = "\n".join(
        [
            _("✅ Ticket <b>🎫 #{id}</b> is open.").format(id=ticket.id),
            _("Priority: {priority}. Expected response: {when}.").format(
                priority=priority_name(ticket.priority), when=within(ticket.expected_response)
            ),
            _("We'll answer in this chat. You can add details by replying to our messages."),
        ]
    )
    return text, keyboard([(_("📄 View ticket"), SupportCB(action="view", id=ticket.id))])


def my_tickets(tickets: list[Ticket]) -> View:
    if not tickets:
        return _("You have no tickets yet."), keyboard([(_("✍️ New ticket"), SupportCB(action="new"))])
    lines = [_("<b>📋 Your tickets</b>")]
    buttons: list[Button] = []
    for t in tickets:
        lines.append(_("{mark} #{id} · {category} · {status}").format(
            mark=STATUS_MARKS[t.status], id=t.id, category=category_name(t.category), status=_(STATUS_NAMES[t.status])
        ))  # fmt: skip
        buttons.append((f"#{t.id} {t.subject[:24]}", SupportCB(action="view", id=t.id)))
    buttons.append((_("✍️ New ticket"), SupportCB(action="new")))
    return "\n".join(lines), keyboard(buttons, 1)


def _thread_lines(thread: Thread, *, staff: bool) -> list[str]:
    t = thread.ticket
    lines = [
        _("<b>Ticket 🎫 #{id}</b> · {category}").format(id=t.id, category=category_name(t.category)),
        _("Status: {status} · {priority}").format(status=_(STATUS_NAMES[t.status]), priority=priority_name(t.priority)),
    ]
    if staff:
        lines.append(
            _("From user <code>{user}</code> · opened {at}").format(
                user=t.user_id, at=t.created_at.strftime("%Y-%m-%d %H:%M UTC")
            )
        )
    if thread.payment is not None:
        lines.append(_("💳 Payment: {payment}").format(payment=payment_line(thread.payment)))
        if staff:  # the full charge id: what /refund takes
            lines.append(_("Charge id: <code>{charge}</code>").format(charge=html.quote(thread.payment.charge_id)))
    for m in thread.messages:
        who = _("🧑‍💼 Support") if m.from_staff else (_("👤 User") if staff else _("👤 You"))
        attachment = _(" 📎 {kind}").format(kind=m.file_kind) if m.file_kind else ""
        lines += ["", f"<b>{who}</b> · {m.at.strftime('%Y-%m-%d %H:%M')}{attachment}", html.quote(m.text)]
    return lines


def thread_view(thread: Thread) -> View:
    t = thread.ticket
    buttons: list[Button] = []
    if t.status != Status.CLOSED:
        buttons += [
            (_("↩️ Reply"), SupportCB(action="reply", id=t.id)),
            (_("✅ Close"), SupportCB(action="close", id=t.id)),
        ]
    buttons.append((_("📋 My tickets"), SupportCB(action="list")))
    return "\n".join(_thread_lines(thread, staff=False)), keyboard(buttons)


def reply_prompt(ticket_id: int) -> str:
    return _("Write your message for ticket #{id} (text, a screenshot or a file). /cancel to stop.").format(
        id=ticket_id
    )


def reply_sent(ticket: Ticket) -> View:
    return _("📨 Added to ticket #{id}. We'll answer here.").format(id=ticket.id), keyboard(
        [(_("📄 View ticket"), SupportCB(action="view", id=ticket.id))]
    )


def answer_for_user(ticket: Ticket, text: str) -> View:
    """A staff reply as the user receives it (in the user's language)."""
    body = "\n".join(
        [
            _("🧑‍💼 <b>Support replied to ticket 🎫 #{id}</b>").format(id=ticket.id),
            "",
            html.quote(text),
            "",
            _("Reply to this message to answer, or use the buttons."),
        ]
    )
    buttons: list[Button] = [
        (_("↩️ Reply"), SupportCB(action="reply", id=ticket.id)),
        (_("✅ Close"), SupportCB(action="close", id=ticket.id)),
    ]
    return body, keyboard(buttons)


def closed_for_user(ticket: Ticket) -> str:
    return _("✅ Ticket #{id} is closed. Thanks for reaching out! /support if you need us again.").format(id=ticket.id)


def ticket_closed(ticket: Ticket) -> View:
    return closed_for_user(ticket), keyboard([(_("📋 My tickets"), SupportCB(action="list"))])


# --- staff ---


def queue_view(tickets: list[Ticket], flt: QueueFilter) -> View:
    lines = [_("<b>🎫 Tickets · {filter}</b>").format(filter=_(FILTER_NAMES[flt]))]
    if not tickets:
        lines.append(_("Nothing here. 🎉"))
    buttons: list[Button] = []
    for t in tickets:
        lines.append(_("{mark} #{id} · {priority} · {category} · user {user}").format(
            mark=STATUS_MARKS[t.status], id=t.id, priority=priority_name(t.priority),
            category=category_name(t.category), user=t.user_id,
        ))  # fmt: skip
        buttons.append((f"#{t.id} {t.subject[:28]}", TicketsCB(action="view", id=t.id)))
    filters: list[Button] = [
        (("• " if f == flt else "") + _(name), TicketsCB(action="queue", value=f.value))
        for f, name in FILTER_NAMES.items()
    ]
    return "\n".join(lines), keyboard([*buttons, *filters], [1] * len(buttons) + [3])


def staff_thread_view(thread: Thread, staff_id: int) -> View:
    t = thread.ticket
    lines = _thread_lines(thread, staff=True)
    if t.assignee_id is not None:
        lines.insert(2, _("Assigned to {who}").format(who=_("you") if t.assignee_id == staff_id else t.assignee_id))
    buttons: list[Button] = []
    if t.status != Status.CLOSED:
        buttons.append((_("↩️ Reply"), TicketsCB(action="reply", id=t.id)))
        if t.assignee_id != staff_id:
            buttons.append((_("🙋 Take"), TicketsCB(action="take", id=t.id)))
        buttons.append((_("✅ Close"), TicketsCB(action="close", id=t.id)))
    else:
        buttons.append((_("♻️ Reopen"), TicketsCB(action="reopen", id=t.id)))
    if any(m.file_id for m in thread.messages):
        buttons.append((_("📎 Attachments"), TicketsCB(action="files", id=t.id)))
    buttons.append((_("« Queue"), TicketsCB(action="queue", value=QueueFilter.OPEN.value)))
    return "\n".join(lines), keyboard(buttons)


def staff_reply_prompt(ticket_id: int) -> str:
    return _("Write the answer for ticket #{id}; the user gets it at once. /cancel to stop.").format(id=ticket_id)


def staff_reply_sent(ticket: Ticket, delivered: bool) -> View:
    text = (
        _("📨 Answer sent to the user of ticket #{id}.")
        if delivered
        else _("📨 Answer saved on ticket #{id}, but the user has blocked the bot: they'll see it in /support.")
    )
    return text.format(id=ticket.id), keyboard([(_("📄 Open ticket"), TicketsCB(action="view", id=ticket.id))])


def staff_new_ticket(ticket: Ticket, text: str) -> View:
    body = "\n".join(
        [
            _("🆕 <b>New ticket 🎫 #{id}</b> · {priority} · {category}").format(
                id=ticket.id, priority=priority_name(ticket.priority), category=category_name(ticket.category)
            ),
            _("From user <code>{user}</code>").format(user=ticket.user_id),
            "",
            html.quote(text[:500]),
        ]
    )
    buttons: list[Button] = [
        (_("📄 Open"), TicketsCB(action="view", id=ticket.id)),
        (_("🙋 Take"), TicketsCB(action="take", id=ticket.id)),
    ]
    return body, keyboard(buttons)


def staff_user_replied(ticket: Ticket, text: str) -> View:
    body = _("💬 User replied on ticket 🎫 #{id}:\n{text}").format(id=ticket.id, text=html.quote(text[:500]))
    return body, keyboard([(_("📄 Open"), TicketsCB(action="view", id=ticket.id))])


def staff_closed(ticket: Ticket) -> str:
    return _("✅ Ticket #{id} closed.").format(id=ticket.id)


def staff_reopened(ticket: Ticket) -> str:
    return _("♻️ Ticket #{id} reopened.").format(id=ticket.id)
