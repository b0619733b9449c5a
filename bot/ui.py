"""Showing a view: a new message for a command, an in-place edit for a button press."""

from __future__ import annotations

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InaccessibleMessage, Message

from bot.views import View


async def show(event: Message | CallbackQuery, view: View, *, answer: bool = True) -> None:
    """``answer=False`` leaves a press's query unanswered, for whoever answers it next (Telegram takes one
    answer per query)."""
    text, markup = view
    if isinstance(event, Message):
        await event.answer(text, reply_markup=markup)
        return
    message = event.message
    if message is None or isinstance(message, InaccessibleMessage):
        await event.answer()
        if message is not None:
            await event.bot.send_message(message.chat.id, text, reply_markup=markup)  # type: ignore[union-attr]
        return
    try:
        await message.edit_text(text, reply_markup=markup)
    except TelegramBadRequest as exc:
        if "message is not modified" not in exc.message:
            raise
    if answer:
        await event.answer()
