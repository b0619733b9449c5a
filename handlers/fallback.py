"""The last router: whatever no other handler took gets a short, localized hint."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, Message

from bot.secret_state import is_secret
from bot.views.fallback import plain_text, stale_button, unknown_command, unknown_command_hidden, unsupported_content
from handlers.filters import has_text, is_command


def make_router() -> Router:
    router = Router(name=__name__)

    @router.message(is_command)
    async def unknown(message: Message, raw_state: str | None = None) -> None:
        text = unknown_command_hidden() if is_secret(raw_state) else unknown_command(message.text or "")
        await message.answer(text)

    @router.message(has_text)
    async def text(message: Message) -> None:
        await message.answer(plain_text())

    @router.message()
    async def other(message: Message) -> None:
        await message.answer(unsupported_content())

    @router.callback_query()
    async def stale(query: CallbackQuery) -> None:
        await query.answer(stale_button(), show_alert=True)

    return router
