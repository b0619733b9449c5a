"""/feedback: a 1–5 rating with an optional comment, or a feature request."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.ui import show
from bot.views.feedback import FeedbackCB, comment_prompt, feedback_home, request_prompt, thanks
from bot.views.menu import MenuCB
from domain.db.uow import UnitOfWork
from domain.errors import InvalidInput
from domain.support.feedback import FeedbackService
from domain.users import User
from handlers.filters import is_plain_text


class FeedbackForm(StatesGroup):
    comment = State()
    request = State()


def make_router() -> Router:
    router = Router(name=__name__)

    @router.message(Command("feedback"))
    @router.callback_query(MenuCB.filter(F.target == "feedback"))
    async def home(event: Message | CallbackQuery, state: FSMContext) -> None:
        await state.clear()
        await show(event, feedback_home())

    @router.callback_query(FeedbackCB.filter(F.action == "rate"))
    async def rate(query: CallbackQuery, callback_data: FeedbackCB, state: FSMContext) -> None:
        if not 1 <= callback_data.value <= 5:
            raise InvalidInput("rating out of range", value=callback_data.value)
        await state.set_state(FeedbackForm.comment)
        await state.update_data(rating=callback_data.value)
        await show(query, comment_prompt(callback_data.value))

    @router.callback_query(StateFilter(FeedbackForm.comment), FeedbackCB.filter(F.action == "skip"))
    async def skip(
        query: CallbackQuery, state: FSMContext, uow: UnitOfWork, user: User, feedback: FeedbackService
    ) -> None:
        rating = int((await state.get_data()).get("rating", 0))
        await state.clear()
        await show(query, (thanks(await feedback.rate(uow, user, rating)), None))

    @router.message(StateFilter(FeedbackForm.comment), is_plain_text)
    async def comment(
        message: Message, state: FSMContext, uow: UnitOfWork, user: User, feedback: FeedbackService
    ) -> None:
        rating = int((await state.get_data()).get("rating", 0))
        await state.clear()
        await message.answer(thanks(await feedback.rate(uow, user, rating, message.text or "")))

    @router.callback_query(FeedbackCB.filter(F.action == "request"))
    async def ask_request(query: CallbackQuery, state: FSMContext) -> None:
        await state.set_state(FeedbackForm.request)
        await show(query, (request_prompt(), None))

    @router.message(StateFilter(FeedbackForm.request), is_plain_text)
    async def request(
        message: Message, state: FSMContext, uow: UnitOfWork, user: User, feedback: FeedbackService
    ) -> None:
        await state.clear()
        await message.answer(thanks(await feedback.request(uow, user, message.text or "")))

    return router
