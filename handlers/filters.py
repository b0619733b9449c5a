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
"""

from __future__ import annotations

from collections.abc import Iterator
from inspect import isclass
from re import Pattern

from aiogram import Router
from aiogram.filters import Command, Filter, StateFilter
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, TelegramObject

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
