"""Async message filters for the hot path.

aiogram runs synchronous filters (``F.text`` magic filters included) through
``asyncio.to_thread``: a thread hop per check. These async equivalents cost a
function call.
"""

from __future__ import annotations

from aiogram.types import Message, TelegramObject

from domain.users import Role, User


async def has_text(message: Message) -> bool:
    return message.text is not None


async def is_command(message: Message) -> bool:
    return message.text is not None and message.text.startswith("/")


async def is_plain_text(message: Message) -> bool:
    """Text that is not a command: what a form step may consume."""
    return message.text is not None and not message.text.startswith("/")


async def is_staff(event: TelegramObject, user: User | None = None) -> bool:
    """Support staff or admins (the role of ``from_user.id``, loaded by the user middleware)."""
    return user is not None and user.is_staff


async def is_admin(event: TelegramObject, user: User | None = None) -> bool:
    return user is not None and user.role == Role.ADMIN
