"""/config: language, time zone and notification switches, edited in place."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n

from bot.ui import show
from bot.views.menu import MenuCB
from bot.views.settings import (
    ConfigCB,
    language_view,
    settings_view,
    timezone_invalid,
    timezone_prompt,
    timezone_view,
)
from domain.clock import utcnow
from domain.db.uow import UnitOfWork
from domain.errors import InvalidInput
from domain.users import User, UserService
from handlers.filters import is_plain_text


class ConfigForm(StatesGroup):
    timezone = State()


def make_router() -> Router:
    router = Router(name=__name__)

    @router.message(Command("config"))
    @router.callback_query(MenuCB.filter(F.target == "config"))
    @router.callback_query(ConfigCB.filter(F.action == "home"))
    async def home(event: Message | CallbackQuery, user: User) -> None:
        await show(event, settings_view(user, utcnow()))

    @router.callback_query(ConfigCB.filter(F.action == "lang"))
    async def languages(query: CallbackQuery, user: User) -> None:
        await show(query, language_view(user))

    @router.callback_query(ConfigCB.filter(F.action == "setlang"))
    async def set_language(
        query: CallbackQuery, callback_data: ConfigCB, uow: UnitOfWork, user: User, users: UserService, i18n: I18n
    ) -> None:
        user = await users.set_language(uow, user, callback_data.value)
        with i18n.use_locale(user.locale):  # answer in the language just chosen
            await show(query, settings_view(user, utcnow()))

    @router.callback_query(ConfigCB.filter(F.action == "tz"))
    async def timezones(query: CallbackQuery, user: User) -> None:
        await show(query, timezone_view(user))

    @router.callback_query(ConfigCB.filter(F.action == "settz"))
    async def set_timezone(
        query: CallbackQuery, callback_data: ConfigCB, uow: UnitOfWork, user: User, users: UserService
    ) -> None:
        user = await users.set_timezone(uow, user, callback_data.value)
        await show(query, settings_view(user, utcnow()))

    @router.callback_query(ConfigCB.filter(F.action == "typetz"))
    async def ask_timezone(query: CallbackQuery, state: FSMContext) -> None:
        await state.set_state(ConfigForm.timezone)
        await query.answer()
        await query.message.answer(timezone_prompt())  # type: ignore[union-attr]

    @router.message(StateFilter(ConfigForm.timezone), is_plain_text)
    async def typed_timezone(
        message: Message, state: FSMContext, uow: UnitOfWork, user: User, users: UserService
    ) -> None:
        try:
            user = await users.set_timezone(uow, user, message.text or "")
        except InvalidInput:
            await message.answer(timezone_invalid(message.text or ""))
            return
        await state.clear()
        await show(message, settings_view(user, utcnow()))

    @router.callback_query(ConfigCB.filter(F.action == "notify"))
    async def toggle(
        query: CallbackQuery, callback_data: ConfigCB, uow: UnitOfWork, user: User, users: UserService
    ) -> None:
        user = await users.toggle_notification(uow, user, callback_data.value)
        await show(query, settings_view(user, utcnow()))

    return router
