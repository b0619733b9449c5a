"""/support: open a ticket in a guided flow, list my tickets, follow a thread, reply, close."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n

from bot.notify import Notifier
from bot.ui import show
from bot.views import View
from bot.views.menu import MenuCB
from bot.views.support import (
    TICKET_MARK,
    SupportCB,
    answer_for_user,
    category_picker,
    describe_prompt,
    my_tickets,
    reply_prompt,
    reply_sent,
    staff_new_ticket,
    staff_reply_sent,
    staff_user_replied,
    support_home,
    thread_view,
    ticket_closed,
    ticket_opened,
)
from domain.db.uow import UnitOfWork
from domain.support.tickets import Attachment, Category, SupportService, Ticket, TicketNotFound
from domain.tiers import Tier
from domain.users import User

log = logging.getLogger(__name__)


class SupportForm(StatesGroup):
    description = State()
    reply = State()


async def is_form_input(message: Message) -> bool:
    """Text that is not a command, or a photo / document (a caption is its text)."""
    if message.text is not None:
        return not message.text.startswith("/")
    return message.photo is not None or message.document is not None


async def replied_ticket(message: Message) -> bool | dict[str, Any]:
    """A Telegram reply to one of our ticket messages: continues that ticket."""
    replied = message.reply_to_message
    if replied is None or replied.from_user is None or not replied.from_user.is_bot:
        return False
    if not await is_form_input(message):
        return False
    match = TICKET_MARK.search(replied.text or replied.caption or "")
    return {"ticket_id": int(match.group(1))} if match else False


def attachment_of(message: Message) -> Attachment | None:
    if message.photo:
        return Attachment(message.photo[-1].file_id, "photo")
    if message.document is not None:
        return Attachment(message.document.file_id, "document")
    return None


def body_of(message: Message) -> str:
    return message.text or message.caption or ""


async def deliver(
    notifier: Notifier, i18n: I18n, uow: UnitOfWork, user: User, key: str, render: Any, *args: Any
) -> bool:
    """Queue a view for another user in their own language, in ``uow``'s transaction (the outbox sends
    it, once per ``key``, if that commits); False when they blocked the bot (the sender flags users who did)."""
    with i18n.context(), i18n.use_locale(user.locale):
        text, markup = render(*args)
    return await notifier.send(user.id, text, markup, key=key, within=uow)


async def notify_staff(
    notifier: Notifier, uow: UnitOfWork, i18n: I18n, support: SupportService, ticket: Ticket, render: Any, text: str,
    origin: str,
) -> None:  # fmt: skip
    for member in await support.staff(uow):
        if member.id == ticket.user_id:
            continue
        if ticket.assignee_id is not None and member.id != ticket.assignee_id:
            continue  # an assigned ticket concerns its assignee only
        await deliver(notifier, i18n, uow, member, f"ticket:{ticket.id}:{origin}:{member.id}", render, ticket, text)


def make_router() -> Router:
    router = Router(name=__name__)

    @router.message(Command("support"))
    @router.callback_query(MenuCB.filter(F.target == "support"))
    @router.callback_query(SupportCB.filter(F.action == "home"))
    async def home(event: Message | CallbackQuery, state: FSMContext) -> None:
        await state.clear()
        await show(event, support_home())

    @router.callback_query(SupportCB.filter(F.action == "new"))
    async def new(query: CallbackQuery) -> None:
        await show(query, category_picker())

    @router.callback_query(SupportCB.filter(F.action == "cat"))
    async def category(query: CallbackQuery, callback_data: SupportCB, state: FSMContext) -> None:
        cat = Category(callback_data.value) if callback_data.value in Category._value2member_map_ else Category.OTHER
        await state.set_state(SupportForm.description)
        await state.update_data(category=cat.value)
        await show(query, (describe_prompt(cat), None))

    @router.message(StateFilter(SupportForm.description), is_form_input)
    async def describe(
        message: Message, state: FSMContext, uow: UnitOfWork, user: User, tier: Tier,
        support: SupportService, notifier: Notifier, i18n: I18n,
    ) -> None:  # fmt: skip
        data = await state.get_data()
        text = body_of(message)

        async def tell_staff(ticket: Ticket) -> None:
            await notify_staff(notifier, uow, i18n, support, ticket, staff_new_ticket, text or "📎", "opened")

        ticket = await support.open(
            uow, user, tier, str(data.get("category", "other")), text, attachment_of(message), announce=tell_staff
        )
        await state.clear()
        await show(message, ticket_opened(ticket))

    @router.callback_query(SupportCB.filter(F.action == "list"))
    async def listing(query: CallbackQuery, uow: UnitOfWork, user: User, support: SupportService) -> None:
        await show(query, my_tickets(await support.mine(uow, user)))

    @router.callback_query(SupportCB.filter(F.action == "view"))
    async def view(
        query: CallbackQuery, callback_data: SupportCB, uow: UnitOfWork, user: User, support: SupportService
    ) -> None:
        await show(query, thread_view(await support.thread(uow, user, callback_data.id)))

    @router.callback_query(SupportCB.filter(F.action == "reply"))
    async def ask_reply(
        query: CallbackQuery, callback_data: SupportCB, state: FSMContext, uow: UnitOfWork, user: User,
        support: SupportService,
    ) -> None:  # fmt: skip
        thread = await support.thread(uow, user, callback_data.id)  # the owner check, before any state
        await state.set_state(SupportForm.reply)
        await state.update_data(ticket=thread.ticket.id)
        await query.answer()
        await query.message.answer(reply_prompt(thread.ticket.id))  # type: ignore[union-attr]

    @router.message(StateFilter(SupportForm.reply), is_form_input)
    async def typed_reply(
        message: Message, state: FSMContext, uow: UnitOfWork, user: User, support: SupportService,
        notifier: Notifier, i18n: I18n,
    ) -> None:  # fmt: skip
        ticket_id = int((await state.get_data()).get("ticket", 0))
        await state.clear()
        await _continue(message, ticket_id, uow, user, support, notifier, i18n)

    @router.message(StateFilter(None), replied_ticket)
    async def telegram_reply(
        message: Message, ticket_id: int, uow: UnitOfWork, user: User, support: SupportService,
        notifier: Notifier, i18n: I18n,
    ) -> None:  # fmt: skip
        await _continue(message, ticket_id, uow, user, support, notifier, i18n)

    @router.callback_query(SupportCB.filter(F.action == "close"))
    async def close(
        query: CallbackQuery, callback_data: SupportCB, uow: UnitOfWork, user: User, support: SupportService
    ) -> None:
        thread = await support.thread(uow, user, callback_data.id)
        if thread.ticket.user_id != user.id:  # staff close from /tickets, where the user is told
            raise TicketNotFound("ticket", ticket=thread.ticket.id)
        await show(query, ticket_closed(await support.close(uow, user, thread.ticket.id)))

    return router


async def answer_ticket(
    message: Message,
    ticket_id: int,
    text: str,
    uow: UnitOfWork,
    staff: User,
    support: SupportService,
    notifier: Notifier,
    i18n: I18n,
) -> None:
    """A staff answer: stored on the ticket and queued for its user, in their language, in one transaction."""
    delivered = False

    async def tell_owner(ticket: Ticket) -> None:
        nonlocal delivered
        owner = await uow.users.get(ticket.user_id)
        key = f"ticket:{ticket.id}:answer:{message.chat.id}:{message.message_id}"
        delivered = owner is not None and await deliver(notifier, i18n, uow, owner, key, answer_for_user, ticket, text)

    ticket = await support.staff_reply(uow, staff, ticket_id, text, announce=tell_owner)
    await show(message, staff_reply_sent(ticket, delivered))


async def _continue(
    message: Message, ticket_id: int, uow: UnitOfWork, user: User, support: SupportService, notifier: Notifier,
    i18n: I18n,
) -> None:  # fmt: skip
    """A user's follow-up (or a staff member's answer given as a Telegram reply)."""
    thread = await support.thread(uow, user, ticket_id)
    if thread.ticket.user_id != user.id:
        await answer_ticket(message, ticket_id, body_of(message), uow, user, support, notifier, i18n)
        return
    text, origin = body_of(message), f"reply:{message.chat.id}:{message.message_id}"

    async def tell_staff(ticket: Ticket) -> None:
        await notify_staff(notifier, uow, i18n, support, ticket, staff_user_replied, text or "📎", origin)

    ticket = await support.user_reply(uow, user, ticket_id, text, attachment_of(message), announce=tell_staff)
    view: View = reply_sent(ticket)
    await show(message, view)
