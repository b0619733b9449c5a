"""Form steps that collect secrets (an MT5 password): declared once, honoured by every layer.

A step declared with :class:`SecretState` instead of aiogram's ``State`` makes
whatever the user types while in it secret: the message is deleted from the chat
before any handler runs (``bot/middlewares/secret_input.py``), the error layer
scrubs it from logs, ``error_events`` and Sentry, and the unknown-command fallback
never echoes it.
"""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup
from aiogram.types import Update

_SECRET: set[str] = set()  # full state names ("LinkForm:password") of every SecretState


class SecretState(State):
    """A form step whose input is a credential."""

    def set_parent(self, group: type[StatesGroup]) -> None:
        super().set_parent(group)
        if self.state:
            _SECRET.add(self.state)


def is_secret(raw_state: str | None) -> bool:
    return raw_state is not None and raw_state in _SECRET


def secret_input(update: Update, raw_state: str | None) -> tuple[str, ...]:
    """The texts of ``update`` that are secret: the message typed at a secret step (as typed and trimmed)."""
    message = update.message
    if message is None or not is_secret(raw_state):
        return ()
    typed = message.text or message.caption or ""
    return tuple(t for t in dict.fromkeys((typed, typed.strip())) if t)
