"""Async message filters for the hot path, and the routers' prefilters.

aiogram runs synchronous filters (``F.text`` magic filters included) through
``asyncio.to_thread``: a thread hop per check. These async equivalents cost a
function call.

:func:`install_prefilters` runs once per process: a router whose every message
handler needs a ``Command`` gets one root filter that turns away, in one check,
any message that cannot be one of those commands (plain text walks past it
instead of through each handler's parsing); likewise a router whose every button
handler needs a ``CallbackData`` prefix. A handler that needs a form state instead
(a ``StateFilter`` of named states) adds those states: at one of them, anything
passes. The prefilter only ever lets through
more than its handlers take, never less, so which handler answers is unchanged.

:func:`dialog_gate` does the same for the aiogram-dialog router as a whole, in a
parent router: an update none of its handlers could take never meets
aiogram-dialog's middlewares (intent loading, a stack lock, the context saver).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from inspect import isclass
from re import Pattern

from aiogram import Router
from aiogram.filters import Command, Filter, StateFilter
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, TelegramObject
from aiogram_dialog.utils import CB_SEP, REPLY_CALLBACK_SYMBOLS

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


States = frozenset[str | None] | None  # FSM states a handler may take (None: any)


class CommandPrefilter(Filter):
    """Lets a message through when its text (or caption) could be one of ``names`` (None: any command),
    or the user is at one of ``states``."""

    def __init__(self, prefixes: frozenset[str], names: frozenset[str] | None, states: frozenset[str | None]) -> None:
        self._prefixes = prefixes
        self._names = names  # casefolded: matching more than the handlers only lets more through
        self._states = states

    async def __call__(self, message: Message, raw_state: str | None = None) -> bool:
        if raw_state in self._states:
            return True
        text = message.text or message.caption
        if not text or text[0] not in self._prefixes:
            return False
        if self._names is None:
            return True
        words = text.split(maxsplit=1)
        return bool(words) and words[0][1:].partition("@")[0].casefold() in self._names


class CallbackPrefilter(Filter):
    """Lets a button press through when its data starts with one of the (separator, prefix) pairs, or the
    user is at one of ``states``."""

    def __init__(self, prefixes: frozenset[tuple[str, str]], states: frozenset[str | None]) -> None:
        self._prefixes = prefixes
        self._states = states

    async def __call__(self, query: CallbackQuery, raw_state: str | None = None) -> bool:
        if raw_state in self._states:
            return True
        data = query.data
        return bool(data) and any(data.split(sep, 1)[0] == prefix for sep, prefix in self._prefixes)  # type: ignore[union-attr]


def _routers(router: Router) -> Iterator[Router]:
    yield router
    for sub in router.sub_routers:
        yield from _routers(sub)


def _states(handler: list[object]) -> States:
    """The states a handler's StateFilter admits (None: any state, or no StateFilter at all)."""
    found: set[str | None] | None = None
    for f in handler:
        if not isinstance(f, StateFilter):
            continue
        states: set[str | None] = set()
        for state in f.states:
            if isinstance(state, State):
                state = state.state
            if state == "*":
                return None
            if state is None or isinstance(state, str):
                states.add(state)
            elif isinstance(state, StatesGroup) or (isclass(state) and issubclass(state, StatesGroup)):
                states.update(state.__all_states_names__)
            else:
                return None
        found = states if found is None else found & states
    return frozenset(found) if found is not None else None


def _command_prefilter(filters: list[list[object]]) -> CommandPrefilter | None:
    prefixes: set[str] = set()
    names: set[str] | None = set()
    states: set[str | None] = set()
    for handler in filters:
        commands = [f for f in handler if isinstance(f, Command)]
        if not commands:
            admitted = _states(handler)
            if admitted is None:
                return None  # a handler that takes more than commands and states: no prefilter
            states.update(admitted)
            continue
        command = commands[0]
        prefixes.update(command.prefix)
        for name in command.commands:
            if isinstance(name, Pattern):
                names = None
            elif names is not None:
                names.add(str(name).casefold())
    return CommandPrefilter(frozenset(prefixes), frozenset(names) if names is not None else None, frozenset(states))


def _callback_prefilter(filters: list[list[object]]) -> CallbackPrefilter | None:
    prefixes: set[tuple[str, str]] = set()
    states: set[str | None] = set()
    for handler in filters:
        data = [f for f in handler if isinstance(f, CallbackQueryFilter)]
        if not data:
            admitted = _states(handler)
            if admitted is None:
                return None
            states.update(admitted)
            continue
        factory = data[0].callback_data
        prefixes.add((factory.__separator__, factory.__prefix__))
    return CallbackPrefilter(frozenset(prefixes), frozenset(states))
def install_prefilters(routers: list[Router]) -> int:
    """Adds the prefilters (see the module docstring) to ``routers`` without sub-routers; returns how many."""
    added = 0
    for top in routers:
        for router in _routers(top):
            if router.sub_routers:  # a failing root filter would skip the sub-routers too
                continue
            for name, build in (("message", _command_prefilter), ("callback_query", _callback_prefilter)):
                observer = router.observers[name]
                if not observer.handlers:
                    continue
                prefilter = build([[f.callback for f in h.filters or []] for h in observer.handlers])
                if prefilter is not None:
                    observer.filter(prefilter)
                    added += 1
    return added


class DialogMessagePrefilter(Filter):
    """A message the dialog router's handlers (``commands``) could take, or one aiogram-dialog turns into a
    button press itself (a reply-keyboard button's text ends with its invisible encoding)."""

    def __init__(self, commands: CommandPrefilter) -> None:
        self._commands = commands

    async def __call__(self, message: Message, raw_state: str | None = None) -> bool:
        text = message.text
        if text and text[-1] in REPLY_CALLBACK_SYMBOLS:
            return True
        return await self._commands(message, raw_state)


class DialogCallbackPrefilter(Filter):
    """A press of a dialog widget (its data carries an intent id), or one the other handlers could take."""

    def __init__(self, others: CallbackPrefilter) -> None:
        self._others = others

    async def __call__(self, query: CallbackQuery, raw_state: str | None = None) -> bool:
        data = query.data
        if data is not None and CB_SEP in data:
            return True
        return await self._others(query, raw_state)


def dialog_gate(dialogs: Router, widget_filter: Callable[..., Awaitable[bool]]) -> Router:
    """``dialogs`` (aiogram-dialog's router, its dialogs as sub-routers) inside a router whose root filters
    turn away, in one check, messages and presses none of its handlers could take; other update kinds
    (aiogram-dialog's own refreshes included) pass as before. An observer any of whose handlers the
    prefilters cannot bound stays ungated. ``widget_filter``: the filter of the dialogs' own button handler
    (dialogs/common.py is_dialog_button), which takes presses carrying an intent id."""
    gate = Router(name=f"{dialogs.name}.gate")
    tree = list(_routers(dialogs))
    messages = [[f.callback for f in h.filters or []] for r in tree for h in r.message.handlers]
    commands = _command_prefilter(messages)
    if commands is not None:
        gate.message.filter(DialogMessagePrefilter(commands))
    presses = [[f.callback for f in h.filters or []] for r in tree for h in r.callback_query.handlers]
    others = _callback_prefilter([h for h in presses if widget_filter not in h])
    if others is not None:
        gate.callback_query.filter(DialogCallbackPrefilter(others))
    gate.include_router(dialogs)
    return gate
