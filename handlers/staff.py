"""Staff commands: /tickets (queue), /user, /grant, /role, /admin. Invisible to everyone else.

Every handler AND every callback carries a role filter: for anyone else the
filter fails and the update falls through to the fallback router ("I don't
know the command", or the stale-button answer), exactly like an unknown one.
"""

from __future__ import annotations

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n

from bot.notify import Notifier
from bot.registry import Registry
from bot.staff_menu import apply_role_menu
from bot.ui import show
from bot.views.staff import (
    ACTIVE_CHOICES,
    BroadcastCB,
    broadcast_button_prompt,
    broadcast_cancelled,
    broadcast_confirm,
    broadcast_message,
    broadcast_prompt,
    broadcast_queued,
    broadcast_segment,
    dashboard,
    grant_usage,
    granted,
    role_set,
    role_usage,
    user_card,
    user_usage,
)
from bot.views.support import (
    TicketsCB,
    closed_for_user,
    queue_view,
    staff_closed,
    staff_reopened,
    staff_reply_prompt,
    staff_thread_view,
)
from domain.admin import AdminService
from domain.broadcast import BroadcastService, Draft, Segment, parse_button
from domain.db.uow import UnitOfWork
from domain.support.tickets import QueueFilter, SupportService, Ticket
from domain.parsing import INT64_MAX, parse_int
from domain.users import User
from handlers.filters import is_admin, is_plain_text, is_staff
from handlers.support import answer_ticket, deliver


class StaffForm(StatesGroup):
    reply = State()


def make_router() -> Router:
    router = Router(name=__name__)

    @router.message(Command("tickets"), is_staff)
    @router.callback_query(TicketsCB.filter(F.action == "queue"), is_staff)
    async def queue(
        event: Message | CallbackQuery, uow: UnitOfWork, user: User, support: SupportService,
        callback_data: TicketsCB | None = None,
    ) -> None:  # fmt: skip
        value = callback_data.value if callback_data else ""
        flt = QueueFilter(value) if value in QueueFilter._value2member_map_ else QueueFilter.OPEN
        await show(event, queue_view(await support.queue(uow, user, flt), flt))

    @router.callback_query(TicketsCB.filter(F.action == "view"), is_staff)
    async def view(
        query: CallbackQuery, callback_data: TicketsCB, uow: UnitOfWork, user: User, support: SupportService
    ) -> None:
        await show(query, staff_thread_view(await support.thread(uow, user, callback_data.id), user.id))

    @router.callback_query(TicketsCB.filter(F.action == "take"), is_staff)
    async def take(
        query: CallbackQuery, callback_data: TicketsCB, uow: UnitOfWork, user: User, support: SupportService
    ) -> None:
        await support.assign(uow, user, callback_data.id)
        await show(query, staff_thread_view(await support.thread(uow, user, callback_data.id), user.id))

    @router.callback_query(TicketsCB.filter(F.action == "files"), is_staff)
    async def files(
        query: CallbackQuery, callback_data: TicketsCB, uow: UnitOfWork, user: User, support: SupportService, bot: Bot
    ) -> None:
        thread = await support.thread(uow, user, callback_data.id)
        await query.answer()
        for m in thread.messages:
            if m.file_id and m.file_kind == "photo":
                await bot.send_photo(user.id, m.file_id, caption=f"🎫 #{thread.ticket.id}")
            elif m.file_id:
                await bot.send_document(user.id, m.file_id, caption=f"🎫 #{thread.ticket.id}")

    @router.callback_query(TicketsCB.filter(F.action == "reply"), is_staff)
    async def ask_reply(
        query: CallbackQuery, callback_data: TicketsCB, state: FSMContext, uow: UnitOfWork, user: User,
        support: SupportService,
    ) -> None:  # fmt: skip
        thread = await support.thread(uow, user, callback_data.id)
        await state.set_state(StaffForm.reply)
        await state.update_data(ticket=thread.ticket.id)
        await query.answer()
        await query.message.answer(staff_reply_prompt(thread.ticket.id))  # type: ignore[union-attr]

    @router.message(StateFilter(StaffForm.reply), is_staff, is_plain_text)
    async def typed_reply(
        message: Message, state: FSMContext, uow: UnitOfWork, user: User, support: SupportService,
        notifier: Notifier, i18n: I18n,
    ) -> None:  # fmt: skip
        ticket_id = int((await state.get_data()).get("ticket", 0))
        await state.clear()
        await answer_ticket(message, ticket_id, message.text or "", uow, user, support, notifier, i18n)

    @router.callback_query(TicketsCB.filter(F.action == "close"), is_staff)
    async def close(
        query: CallbackQuery, callback_data: TicketsCB, uow: UnitOfWork, user: User, support: SupportService,
        notifier: Notifier, i18n: I18n,
    ) -> None:  # fmt: skip
        async def tell_owner(ticket: Ticket) -> None:  # only when this tap closed it
            owner = await uow.users.get(ticket.user_id)
            if owner is not None:
                key = f"ticket:{ticket.id}:closed:{query.id}"
                await deliver(notifier, i18n, uow, owner, key, lambda t: (closed_for_user(t), None), ticket)

        ticket = await support.close(uow, user, callback_data.id, announce=tell_owner)
        await show(query, (staff_closed(ticket), None))

    @router.callback_query(TicketsCB.filter(F.action == "reopen"), is_staff)
    async def reopen(
        query: CallbackQuery, callback_data: TicketsCB, uow: UnitOfWork, user: User, support: SupportService
    ) -> None:
        ticket = await support.reopen(uow, user, callback_data.id)
        await show(query, (staff_reopened(ticket), None))

    @router.message(Command("user"), is_staff)
    async def user_lookup(
        message: Message, command: CommandObject, uow: UnitOfWork, user: User, admin: AdminService
    ) -> None:
        if not command.args:
            await message.answer(user_usage())
            return
        await message.answer(user_card(await admin.card(uow, user, command.args.split()[0])))

    @router.message(Command("grant"), is_admin)
    async def grant(message: Message, command: CommandObject, uow: UnitOfWork, user: User, admin: AdminService) -> None:
        args = (command.args or "").split()
        days = parse_int(args[2], low=0, high=INT64_MAX) if len(args) == 3 else None
        if days is None:
            await message.answer(grant_usage())
            return
        await message.answer(granted(await admin.grant_tier(uow, user, args[0], args[1], days)))

    @router.message(Command("role"), is_admin)
    async def role(
        message: Message, command: CommandObject, uow: UnitOfWork, user: User, admin: AdminService, bot: Bot,
        registry: Registry, i18n: I18n,
    ) -> None:  # fmt: skip
        args = (command.args or "").split()
        if len(args) != 2:
            await message.answer(role_usage())
            return
        target = await admin.set_role(uow, user, args[0], args[1])
        try:
            await apply_role_menu(bot, registry, i18n, target.id, target.role)
        except TelegramAPIError:
            pass
        await message.answer(role_set(target))

    @router.message(Command("admin"), is_admin)
    async def admin_dashboard(message: Message, uow: UnitOfWork, user: User, admin: AdminService) -> None:
        await message.answer(dashboard(await admin.dashboard(uow, user)))

    router.include_router(make_broadcast_router())
    return router


class BroadcastForm(StatesGroup):
    text = State()
    button = State()
    segment = State()


async def _is_message_input(message: Message) -> bool:
    if message.text is not None:
        return not message.text.startswith("/")
    return bool(message.photo)


def _segment(data: dict[str, object]) -> Segment:
    days = int(str(data.get("active") or 0))
    return Segment(tier=data.get("tier") or None, language=data.get("lang") or None, active_days=days or None)  # type: ignore[arg-type]


def make_broadcast_router() -> Router:
    router = Router(name=__name__ + ".broadcast")

    async def show_segment(
        event: Message | CallbackQuery, state: FSMContext, uow: UnitOfWork, user: User, broadcasts: BroadcastService
    ) -> None:
        await state.set_state(BroadcastForm.segment)
        segment = _segment(await state.get_data())
        await show(event, broadcast_segment(segment, await broadcasts.audience(uow, user, segment)))

    @router.message(Command("broadcast"), is_admin)
    async def start(message: Message, state: FSMContext) -> None:
        await state.clear()
        await state.set_state(BroadcastForm.text)
        await message.answer(broadcast_prompt())

    @router.message(StateFilter(BroadcastForm.text), is_admin, _is_message_input)
    async def text(message: Message, state: FSMContext, broadcasts: BroadcastService) -> None:
        body = message.text or message.caption or ""
        broadcasts.validate(Draft(body))
        await state.update_data(text=body, photo=message.photo[-1].file_id if message.photo else None)
        await state.set_state(BroadcastForm.button)
        await show(message, broadcast_button_prompt())

    @router.message(StateFilter(BroadcastForm.button), is_admin, is_plain_text)
    async def button(
        message: Message, state: FSMContext, uow: UnitOfWork, user: User, broadcasts: BroadcastService
    ) -> None:
        label, url = parse_button(message.text or "")
        await state.update_data(button_text=label, button_url=url)
        await show_segment(message, state, uow, user, broadcasts)

    @router.callback_query(StateFilter(BroadcastForm.button), BroadcastCB.filter(F.action == "skip"), is_admin)
    async def skip(
        query: CallbackQuery, state: FSMContext, uow: UnitOfWork, user: User, broadcasts: BroadcastService
    ) -> None:
        await show_segment(query, state, uow, user, broadcasts)

    @router.callback_query(
        StateFilter(BroadcastForm.segment), BroadcastCB.filter(F.action.in_({"tier", "lang", "active"})), is_admin
    )
    async def choose(
        query: CallbackQuery, callback_data: BroadcastCB, state: FSMContext, uow: UnitOfWork, user: User,
        broadcasts: BroadcastService,
    ) -> None:  # fmt: skip
        key = callback_data.action
        if key == "active" and parse_int(callback_data.value, low=0, high=max(ACTIVE_CHOICES)) is None:
            return await show_segment(query, state, uow, user, broadcasts)
        await state.update_data({key: callback_data.value or None})
        await show_segment(query, state, uow, user, broadcasts)

    @router.callback_query(StateFilter(BroadcastForm.segment), BroadcastCB.filter(F.action == "preview"), is_admin)
    async def preview(
        query: CallbackQuery, state: FSMContext, uow: UnitOfWork, user: User, broadcasts: BroadcastService, bot: Bot
    ) -> None:
        data = await state.get_data()
        segment = _segment(data)
        draft = Draft(
            str(data.get("text", "")), data.get("photo"), data.get("button_text"), data.get("button_url"), segment
        )
        broadcast = await broadcasts.create(uow, user, draft)
        await state.clear()
        await query.answer()
        text, markup = broadcast_message(broadcast)
        if broadcast.photo_file_id:
            await bot.send_photo(user.id, broadcast.photo_file_id, caption=text, reply_markup=markup)
        else:
            await bot.send_message(user.id, text, reply_markup=markup)
        confirm_text, confirm_markup = broadcast_confirm(broadcast.id, await broadcasts.audience(uow, user, segment))
        await bot.send_message(user.id, confirm_text, reply_markup=confirm_markup)

    @router.callback_query(BroadcastCB.filter(F.action == "send"), is_admin)
    async def send(
        query: CallbackQuery, callback_data: BroadcastCB, uow: UnitOfWork, user: User, broadcasts: BroadcastService
    ) -> None:
        message_id = query.message.message_id if query.message else None
        progress = await broadcasts.start(uow, user, callback_data.id, message_id)
        await show(query, (broadcast_queued(progress), None))

    @router.callback_query(BroadcastCB.filter(F.action == "cancel"), is_admin)
    async def cancel(
        query: CallbackQuery, callback_data: BroadcastCB, uow: UnitOfWork, user: User, broadcasts: BroadcastService
    ) -> None:
        await broadcasts.cancel(uow, user, callback_data.id)
        await show(query, (broadcast_cancelled(), None))

    return router
