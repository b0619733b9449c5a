"""Small helpers shared by the middlewares: what an update is, and how to answer it."""

from __future__ import annotations

from aiogram import Bot
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, Update

def interactive(update: Update) -> Message | CallbackQuery | None:
    """What a person typed or tapped: the only updates rate limits and gates apply to.

    Payments (pre-checkout queries, successful and refunded payment messages) and
    membership changes pass untouched: Telegram needs them answered, and losing
    one would lose money.
    """
    if update.message is not None:
        message = update.message
        if message.successful_payment is not None or message.refunded_payment is not None:
            return None
        return message
    if update.callback_query is not None:
        return update.callback_query
    return None


async def notify(
    bot: Bot, event: Message | CallbackQuery, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Answer a message with a message, a button press with an alert (plus a message when there are buttons)."""
    if isinstance(event, Message):
        await bot.send_message(event.chat.id, text, reply_markup=markup)
        return
    await bot.answer_callback_query(event.id, text[:200], show_alert=True)
    if markup is not None and event.message is not None:
        await bot.send_message(event.message.chat.id, text, reply_markup=markup)
