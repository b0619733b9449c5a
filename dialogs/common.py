"""Widgets and handlers shared by the dialogs: translated labels, dependencies, the stale-button reply."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, TelegramObject
from aiogram.utils.i18n import gettext as _
from aiogram_dialog import Dialog, DialogManager
from aiogram_dialog.api.exceptions import OutdatedIntent, UnknownIntent, UnknownState
from aiogram_dialog.utils import CB_SEP
from aiogram_dialog.widgets.common import WhenCondition
from aiogram_dialog.widgets.text import Text

from bot.views.analytics import stale_text

log = logging.getLogger(__name__)


class Label(Text):
    """A button or line label: a msgid (marked with ``N_``) translated in the user's locale at render time."""

    def __init__(self, msgid: str, when: WhenCondition = None) -> None:
        super().__init__(when=when)
        self.msgid = msgid

    async def _render_text(self, data: dict[str, Any], manager: DialogManager) -> str:
        return _(self.msgid)


def dep(manager: DialogManager, name: str) -> Any:
    """A dependency the middlewares or the Dispatcher put in the update's data (``uow``, ``user``, ``trading``…)."""
    return manager.middleware_data[name]


class StaleDialogMiddleware(BaseMiddleware):
    """Stale dialog buttons (after a restart, or of a dashboard since replaced) get a friendly reply.

    Registered on the Dispatcher's callback queries before ``setup_dialogs`` so it wraps aiogram-dialog's
    intent middleware, which is where ``UnknownIntent`` is raised; the error middleware would otherwise
    report it as a bug.
    """

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        try:
            return await handler(event, data)
        except (UnknownIntent, UnknownState, OutdatedIntent) as exc:
            log.info("stale dialog button: %s", exc)
            if isinstance(event, CallbackQuery):
                await event.answer(stale_text()[:200], show_alert=True)
            return None


class ButtonDialog(Dialog):
    """A dialog driven by its own buttons only.

    aiogram-dialog's Dialog also takes every message, and every button press without an intent id, of a
    chat whose dialog is open (answering by re-showing the window), so /close typed, or a /trade Confirm
    pressed, beside an open dashboard would never reach its command. Our dashboards take no typed input:
    everything that is not one of the dialog's buttons goes on to the command routers.
    """

    def _register_handlers(self) -> None:
        self.callback_query.register(self._callback_handler, is_dialog_button)


async def is_dialog_button(query: CallbackQuery) -> bool:
    """Callback data of a dialog widget: ``<intent id><CB_SEP><widget data>``."""
    return query.data is not None and CB_SEP in query.data
