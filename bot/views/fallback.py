"""Answers for what no handler took: unknown commands, other content, stale buttons."""

from __future__ import annotations

from aiogram import html
from aiogram.utils.i18n import gettext as _


def unknown_command(text: str) -> str:
    name = text.split(maxsplit=1)[0][:48]
    return _("I don't know the command {command}. Send /help to see what I can do.").format(command=html.quote(name))


def unknown_command_hidden() -> str:
    """An unknown command typed at a step that collects a secret: never echoed back."""
    return _("I don't know that command. Send /help to see what I can do.")


def secret_not_deleted() -> str:
    return _(
        "I couldn't delete your message from this chat. It holds a password: delete it yourself now, "
        "and change the password if anyone else can read this chat."
    )


def private_only(command: str) -> str:
    return _(
        "/{command} shows your account, so it works only in a private chat with me. "
        "Open a chat with me and send it there."
    ).format(command=command)


def plain_text() -> str:
    return _("I work with commands. Send /help to see them, or /start for the menu.")


def unsupported_content() -> str:
    return _("I can't read this kind of message. Send /help to see the commands.")


def stale_button() -> str:
    return _("This button has expired. Send /start for a fresh menu.")


def cancelled(had_state: bool) -> str:
    return _("Cancelled.") if had_state else _("Nothing to cancel.")
