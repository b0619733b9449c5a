"""Loads (or creates) the user behind an update and resolves their tier."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User as TgUser
from aiogram_dialog.api.entities import DialogUpdate

from domain.users import Profile, UserService


class UserMiddleware(BaseMiddleware):
    def __init__(self, users: UserService) -> None:
        self._users = users

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        tg_user: TgUser | None = data.get("event_from_user")
        if isinstance(event, DialogUpdate):  # a worker refreshing a dialog: its user is a stub (no name), so read only
            user = await data["uow"].users.get(tg_user.id) if tg_user is not None else None
            if user is not None:
                data["user"], data["user_created"], data["tier"] = user, False, self._users.tier_of(user)
            return await handler(event, data)
        if tg_user is not None and not tg_user.is_bot:
            profile = Profile(tg_user.id, tg_user.first_name, tg_user.username, tg_user.language_code)
            seen = await self._users.seen(data["uow"], profile)
            data["user"] = seen.user
            data["user_created"] = seen.created
            data["tier"] = self._users.tier_of(seen.user)
        return await handler(event, data)
