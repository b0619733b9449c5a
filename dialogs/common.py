"""Widgets and handlers shared by the dialogs: translated labels, dependencies, the stale-button reply."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware
from aiogram.fsm.state import State
from aiogram.types import CallbackQuery, TelegramObject
from aiogram.utils.i18n import gettext as _
from aiogram_dialog import Dialog, DialogManager, ShowMode, Window
from aiogram_dialog.api.exceptions import OutdatedIntent, UnknownIntent, UnknownState
from aiogram_dialog.utils import CB_SEP, remove_intent_id
from aiogram_dialog.widgets.common import WhenCondition
from aiogram_dialog.widgets.kbd import Cancel, ScrollingGroup, SwitchTo
from aiogram_dialog.widgets.text import Text

from bot.middlewares.common import notify
from bot.middlewares.compliance import disclosure_refusal
from bot.middlewares.tiers import tier_refusal
from bot.views import View
from bot.views.analytics import stale_text
from domain.parsing import parse_int
from bot.views.plans import feature_locked_view
from domain.tiers import Feature

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


@dataclass(frozen=True, slots=True)
class Needs:
    """What showing a window or pressing a button requires of the user.

    ``command``: the registry command whose gates apply (its tier or feature and, when the bare command moves
    money or links an account, the risk disclosure): a dashboard action is gated exactly like the command
    that does the same thing (closing a position like /close; the kill switch like /trading, which reads).
    ``feature``: a plan feature of its own (a premium panel).
    """

    command: str | None = None
    feature: Feature | None = None


class DialogGuard:
    """The server-side check of every dialog button, declared once per dialog.

    ``when=`` only hides a button: its callback data (``<intent id><CB_SEP><widget id>[:item]``) still works
    when forged. Before a press is processed, the guard checks what the window it would show needs (a
    ``SwitchTo``'s target, or the current window re-rendered) and what the pressed widget itself needs;
    a refusal gets the gates' own localized answer and changes nothing.
    """

    def __init__(self, windows: dict[State, Needs], widgets: dict[str, Needs]) -> None:
        self._windows = {state.state: needs for state, needs in windows.items()}
        self._widgets = widgets

    def needs(self, dialog: Dialog, state: State | str, data: str) -> list[Needs]:
        """What pressing the widget of ``data`` (intent id removed) in the window of ``state`` requires."""
        current = state.state if isinstance(state, State) else state
        widget_id = data.split(":", 1)[0]
        window = dialog.windows.get(current)  # type: ignore[call-overload]
        widget = window.find(widget_id) if window is not None else None
        if isinstance(widget, SwitchTo):
            shown: str | None = widget.state.state
        elif isinstance(widget, Cancel):
            shown = None  # closes the dialog: nothing is shown
        else:
            shown = current  # the same window, re-rendered (or switched by the widget's own handler)
        found = [self._widgets.get(widget_id), self._windows.get(shown) if shown else None]
        return [n for n in found if n is not None]

    async def refusal(self, dialog: Dialog, query: CallbackQuery, manager: DialogManager) -> View | None:
        data = manager.middleware_data
        _intent, widget_data = remove_intent_id(query.data or "")
        state = manager.current_context().state
        if malformed(dialog, state, widget_data):
            return outdated_view()
        for needs in self.needs(dialog, state, widget_data):
            refusal = await _refusal(needs, data)
            if refusal is not None:
                return refusal
        return None


MAX_PAGE = 999_999  # a page number of a ScrollingGroup: more than any list of ours has pages


def malformed(dialog: Dialog, state: State | str, data: str) -> bool:
    """Widget data no button of ours carries: a page of a scrolling group that is not a small number
    (aiogram-dialog would fail parsing it). Select items are checked by their own handlers."""
    widget_id, sep, item = data.partition(":")
    window = dialog.windows.get(state.state if isinstance(state, State) else state)  # type: ignore[call-overload]
    widget = window.find(widget_id) if window is not None else None
    return bool(sep) and isinstance(widget, ScrollingGroup) and parse_int(item, low=0, high=MAX_PAGE) is None


def outdated_view() -> View:
    return _("This button is out of date. Open a fresh one with /analytics."), None


async def _refusal(needs: Needs, data: dict[str, Any]) -> View | None:
    user, tier, tiers = data.get("user"), data.get("tier"), data["tiers"]
    if user is None or tier is None:  # no profile behind the press (it cannot happen through the middlewares)
        return outdated_view()
    if needs.feature is not None and not tier.has(needs.feature):
        return feature_locked_view(needs.feature, tiers.required_for(min_tier=None, feature=needs.feature))
    if needs.command is not None:
        registry = data["registry"]
        command = registry.get(needs.command)
        if command is None:
            raise LookupError(f"dialog guard names /{needs.command}, which the registry does not declare")
        refusal = tier_refusal(registry, tiers, command, tier)
        if refusal is None:
            refusal = await disclosure_refusal(data["compliance"], data["uow"], command, user)
        return refusal
    return None


class ButtonDialog(Dialog):
    """A dialog driven by its own buttons only, each press checked by its :class:`DialogGuard`.

    aiogram-dialog's Dialog also takes every message, and every button press without an intent id, of a
    chat whose dialog is open (answering by re-showing the window), so /close typed, or a /trade Confirm
    pressed, beside an open dashboard would never reach its command. Our dashboards take no typed input:
    everything that is not one of the dialog's buttons goes on to the command routers.
    """

    def __init__(self, *windows: Window, guard: DialogGuard, **kwargs: Any) -> None:
        super().__init__(*windows, **kwargs)
        self.guard = guard

    def _register_handlers(self) -> None:
        self.callback_query.register(self._callback_handler, is_dialog_button)

    async def _callback_handler(self, callback: CallbackQuery, dialog_manager: DialogManager) -> None:
        refusal = await self.guard.refusal(self, callback, dialog_manager)
        if refusal is None:
            await super()._callback_handler(callback, dialog_manager)
            return
        text, markup = refusal
        dialog_manager.show_mode = ShowMode.NO_UPDATE  # the window stays as it was
        await notify(dialog_manager.middleware_data["bot"], callback, text, markup)


async def is_dialog_button(query: CallbackQuery) -> bool:
    """Callback data of a dialog widget: ``<intent id><CB_SEP><widget data>``."""
    return query.data is not None and CB_SEP in query.data
