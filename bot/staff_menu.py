"""Staff command menus: per-chat command scopes, so only staff ever see staff commands.

The public menu (``BotCommandScopeDefault``) lists public commands only; each
staff member gets a ``BotCommandScopeChat`` menu (per language) with the staff
commands of their role. Set at startup and again whenever a role changes.
"""

from __future__ import annotations

import logging
from typing import Protocol

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.registry import Registry
from bot.settings import Settings
from domain.db.support import staff_roles
from domain.users import DEFAULT_LANGUAGE, LANGUAGES, Role

log = logging.getLogger(__name__)


class _AppLike(Protocol):
    settings: Settings
    registry: Registry
    i18n: I18n
    sessionmaker: async_sessionmaker[AsyncSession]


async def apply_role_menu(bot: Bot, registry: Registry, i18n: I18n, user_id: int, role: Role) -> None:
    """One user's menu after a role change: staff get their own scope, others fall back to the default."""
    scope = BotCommandScopeChat(chat_id=user_id)
    for language in LANGUAGES:
        code = None if language == DEFAULT_LANGUAGE else language
        try:
            if role == Role.USER:
                await bot.delete_my_commands(scope=scope, language_code=code)
                continue
            commands = [
                BotCommand(command=c.name, description=i18n.gettext(c.description, locale=language)[:256])
                for c in registry.for_role(role)
            ]
            await bot.set_my_commands(commands, scope=scope, language_code=code)
        except TelegramAPIError as exc:  # a staff member who never opened the chat
            log.info("no command scope for chat %s: %s", user_id, exc)
            return


async def set_staff_commands(bot: Bot, app: _AppLike) -> None:
    # Seeded staff who have not written yet get their menu too (their role is stored at first contact).
    seeded = {uid: Role.SUPPORT for uid in app.settings.support_ids} | {
        uid: Role.ADMIN for uid in app.settings.admin_ids
    }
    async with app.sessionmaker() as session:
        roles = await staff_roles(session, seeded)
    for user_id, role in roles.items():
        await apply_role_menu(bot, app.registry, app.i18n, user_id, role)
