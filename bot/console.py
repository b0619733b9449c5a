"""`python -m bot console`: chat with the real Dispatcher in a terminal, offline.

Every update goes through the same routers and middlewares as in production;
only the transport differs. The bot's messages are printed, inline keyboards
are shown as numbered buttons, and typing a number presses one.
"""

from __future__ import annotations

import asyncio
import html
import itertools
import re
import sys
import time
from collections.abc import AsyncGenerator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import (
    AnswerCallbackQuery,
    DeleteMessage,
    EditMessageReplyMarkup,
    EditMessageText,
    GetMe,
    SendDocument,
    SendMessage,
    SendPhoto,
    TelegramMethod,
)
from aiogram.methods.base import TelegramType
from aiogram.types import (
    BufferedInputFile,
    CallbackQuery,
    Chat,
    FSInputFile,
    InlineKeyboardMarkup,
    Message,
    Update,
    User,
)

from bot.app import create_app, create_bot
from bot.settings import Settings

CONSOLE_TOKEN = "1:console"
_TAG = re.compile(r"<[^>]+>")
_BOLD = re.compile(r"</?b>")


class ConsoleSession(BaseSession):
    """Answers Bot API calls locally and renders them for a terminal."""

    def __init__(self, chat_id: int, out: Callable[[str], None], files_dir: Path, color: bool = False) -> None:
        super().__init__()
        self._chat = Chat(id=chat_id, type="private")
        self._out = out
        self._files_dir = files_dir
        self._color = color
        self._ids = itertools.count(1)
        self.buttons: list[tuple[str, str | None, str | None]] = []  # (label, callback data, url)
        self.keyboard_message: Message | None = None

    async def close(self) -> None:
        return None

    def say(self, line: str) -> None:
        self._out(line)

    async def stream_content(self, url: str, headers: dict[str, Any] | None = None, timeout: int = 30,
                             chunk_size: int = 65536, raise_for_status: bool = True) -> AsyncGenerator[bytes, None]:  # fmt: skip
        raise RuntimeError("the console transport has no files to download")
        yield b""

    async def make_request(self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None) -> Any:
        if isinstance(method, GetMe):
            return User(id=1, is_bot=True, first_name="Hybrid Trader", username="hybrid_trader_bot")
        if isinstance(method, SendMessage | EditMessageText):
            edited = isinstance(method, EditMessageText)
            self._print_text(method.text, edited=edited)
            return self._message(method.text, method.reply_markup, getattr(method, "message_id", None))
        if isinstance(method, EditMessageReplyMarkup):
            return self._message(None, method.reply_markup, method.message_id)
        if isinstance(method, SendPhoto | SendDocument):
            media = method.photo if isinstance(method, SendPhoto) else method.document
            path = self._save(media)
            self._print_text((method.caption or "") + f"\n[file saved: {path}]", edited=False)
            return self._message(method.caption, method.reply_markup, None)
        if isinstance(method, AnswerCallbackQuery):
            if method.text:
                self._out(("⚠ " if method.show_alert else "· ") + method.text)
            return True
        if isinstance(method, DeleteMessage):
            return True
        return True  # setMyCommands, chat actions and other acknowledgements

    def _message(self, text: str | None, markup: Any, message_id: int | None) -> Message:
        message = Message(
            message_id=message_id or next(self._ids),
            date=datetime.now(UTC),
            chat=self._chat,
            text=text,
            reply_markup=markup if isinstance(markup, InlineKeyboardMarkup) else None,
        )
        if isinstance(markup, InlineKeyboardMarkup):
            self.buttons = [(b.text, b.callback_data, b.url) for row in markup.inline_keyboard for b in row]
            self.keyboard_message = message
            for number, (label, _data, url) in enumerate(self.buttons, 1):
                self._out(f"  [{number}] {label}" + (f" → {url}" if url else ""))
        return message

    def _print_text(self, text: str, *, edited: bool) -> None:
        if self._color:
            text = _BOLD.sub(lambda m: "\033[0m" if m.group(0) == "</b>" else "\033[1m", text)
        body = html.unescape(_TAG.sub("", text))
        self._out(("✎ " if edited else "") + "🤖 " + body.replace("\n", "\n   "))

    def _save(self, media: Any) -> Path:
        self._files_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(media, BufferedInputFile):
            path = self._files_dir / (media.filename or f"file-{int(time.time())}")
            path.write_bytes(media.data)
            return path
        if isinstance(media, FSInputFile):
            return Path(media.path)
        return Path(str(media))


class Console:
    """Turns typed lines into Updates for the real Dispatcher."""

    def __init__(self, user: User, session: ConsoleSession) -> None:
        self.user = user
        self.session = session
        self._update_ids = itertools.count(int(time.time() * 1000))  # unique across restarts (de-duplication)
        self._message_ids = itertools.count(1_000_000)

    def update_for(self, line: str) -> Update | None:
        text = line.strip()
        if not text:
            return None
        if text.isdigit() and self.session.buttons:
            index = int(text) - 1
            if not 0 <= index < len(self.session.buttons):
                return None
            _label, data, url = self.session.buttons[index]
            if data is None:
                self.session.say(f"(opens {url} in Telegram)")
                return None
            query = CallbackQuery(
                id=str(next(self._update_ids)),
                from_user=self.user,
                chat_instance="console",
                message=self.session.keyboard_message,
                data=data,
            )
            return Update(update_id=next(self._update_ids), callback_query=query)
        message = Message(
            message_id=next(self._message_ids),
            date=datetime.now(UTC),
            chat=Chat(id=self.user.id, type="private"),
            from_user=self.user,
            text=text[:4096],
        )
        return Update(update_id=next(self._update_ids), message=message)


async def run_console(settings: Settings, *, user_id: int, language: str, stdin: TextIO = sys.stdin,
                      out: Callable[[str], None] = print) -> int:  # fmt: skip
    app = await create_app(settings)
    session = ConsoleSession(user_id, out, settings.ensure_data_dir() / "console", color=sys.stdout.isatty())
    bot = create_bot(settings, session=session, token=CONSOLE_TOKEN)
    console = Console(User(id=user_id, is_bot=False, first_name="Trader", language_code=language), session)
    app.start_background(bot)
    out("Hybrid Trader console: type /start, a command, or a button number. Ctrl-D to quit.")
    try:
        while True:
            line = await asyncio.to_thread(stdin.readline)
            if not line:
                break
            update = console.update_for(line)
            if update is not None:
                await app.dispatcher.feed_update(bot, update)
                await app.replays.settle()  # a blocked command replayed after the acceptance prints before the prompt
    finally:
        await app.close()
    return 0
