"""Router prefilters (handlers/filters.py): they turn away only what no handler of the router could take."""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackData
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Chat, Message, User

from aiogram_dialog.utils import CB_SEP, encode_reply_callback

from dialogs.common import is_dialog_button
from handlers.filters import CallbackPrefilter, CommandPrefilter, dialog_gate, has_text, install_prefilters


class Form(StatesGroup):
    name = State()


class PickCB(CallbackData, prefix="pick"):
    n: int


def _message(text: str) -> Message:
    return Message(message_id=1, date=datetime.now(UTC), chat=Chat(id=1, type="private"), text=text)


def _press(data: str) -> CallbackQuery:
    return CallbackQuery(id="1", from_user=User(id=1, is_bot=False, first_name="A"), chat_instance="c", data=data)


def _prefilter(router: Router, observer: str) -> object | None:
    found = [f.callback for f in router.observers[observer]._handler.filters or []]
    return found[0] if found else None


async def test_commands_and_form_states_are_let_through_plain_text_is_not() -> None:
    router = Router()
    router.message.register(lambda m: None, Command("Ping", "pong"))
    router.message.register(lambda m: None, StateFilter(Form.name), has_text)
    router.callback_query.register(lambda q: None, PickCB.filter(F.n > 1))
    assert install_prefilters([router]) == 2
    messages, presses = _prefilter(router, "message"), _prefilter(router, "callback_query")
    assert isinstance(messages, CommandPrefilter) and isinstance(presses, CallbackPrefilter)
    assert await messages(_message("/ping")) and await messages(_message("/PONG@bot 1 2"))
    assert not await messages(_message("hello")) and not await messages(_message("/other"))
    assert await messages(_message("hello"), raw_state=Form.name.state)  # the form step may take it
    assert await presses(_press("pick:0"))  # the rule (n > 1) is still the handler's to check
    assert not await presses(_press("menu:help")) and not await presses(_press("pickle:1"))


async def test_a_router_that_takes_anything_gets_no_prefilter() -> None:
    router = Router()
    router.message.register(lambda m: None, Command("ping"))
    router.message.register(lambda m: None, has_text)  # any text: a prefilter could only lose updates
    router.callback_query.register(lambda q: None, StateFilter("*"))
    assert install_prefilters([router]) == 0
    parent, child = Router(), Router()
    child.message.register(lambda m: None, Command("ping"))
    parent.message.register(lambda m: None, Command("pong"))
    parent.include_router(child)
    assert install_prefilters([parent]) == 1  # the child only: a failing root filter would hide the child
    assert _prefilter(parent, "message") is None and _prefilter(child, "message") is not None


async def test_the_dialog_gate_lets_through_what_the_dialog_router_could_take() -> None:
    dialogs, dashboard = Router(name="dialogs"), Router(name="dashboard")
    dialogs.message.register(lambda m: None, Command("analytics"))
    dialogs.callback_query.register(lambda q: None, PickCB.filter())
    dashboard.callback_query.register(lambda q: None, is_dialog_button)  # a dialog's own buttons
    dialogs.include_router(dashboard)
    gate = dialog_gate(dialogs, is_dialog_button)
    assert dialogs.parent_router is gate
    messages, presses = _prefilter(gate, "message"), _prefilter(gate, "callback_query")
    assert messages is not None and presses is not None
    assert await messages(_message("/analytics")) and await messages(_message("/Analytics@bot"))
    assert await messages(_message("Back" + encode_reply_callback("x" + CB_SEP + "back")))  # a reply-keyboard button
    assert not await messages(_message("hello")) and not await messages(_message("/help"))
    assert await presses(_press("abc" + CB_SEP + "refresh")) and await presses(_press("pick:1"))
    assert not await presses(_press("menu:help")) and not await presses(_press("cfg:lang:"))


async def test_a_dialog_that_takes_any_message_leaves_the_gate_open() -> None:
    dialogs = Router()
    dialogs.message.register(lambda m: None)  # aiogram-dialog's own Dialog takes every message of an open dialog
    dialogs.callback_query.register(lambda q: None)
    gate = dialog_gate(dialogs, is_dialog_button)
    assert _prefilter(gate, "message") is None and _prefilter(gate, "callback_query") is None
