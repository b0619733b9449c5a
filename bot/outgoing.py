"""Outgoing requests: the one place that splits long messages and honours flood control.

Registered on the Bot's session, so every handler, worker and dialog can just
``answer(text)`` and never think about Telegram's 4096-character limit or 429s.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, SendMessage, TelegramMethod
from aiogram.methods.base import TelegramType

log = logging.getLogger(__name__)

LIMIT = 4096
MAX_RETRIES = 3
MAX_WAIT = 60.0  # longer floods are surfaced to the caller instead of stalling it

_TOKEN = re.compile(r"(<[^>]+>|&[#\w]+;)")
_OPEN_TAG = re.compile(r"<([a-zA-Z][\w-]*)(?:\s[^>]*)?>")
_CLOSE_TAG = re.compile(r"</([a-zA-Z][\w-]*)>")


def visible_length(html: str) -> int:
    """Length as Telegram counts it: tags removed, each entity one character."""
    return sum(1 if tok.startswith("&") else len(tok) for tok in _TOKEN.split(html) if not tok.startswith("<"))


def split_html(text: str, limit: int = LIMIT) -> list[str]:
    """Split on line breaks where possible; close and reopen tags across the cut."""
    if visible_length(text) <= limit:
        return [text]
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    stack: list[tuple[str, str]] = []  # (name, opening tag)

    def cut() -> None:
        nonlocal current, size
        closing = "".join(f"</{name}>" for name, _ in reversed(stack))
        chunks.append("".join(current).rstrip("\n") + closing)
        current = [tag for _, tag in stack]
        size = 0

    for line in text.splitlines(keepends=True):
        line_size = visible_length(line)
        if size and size + line_size > limit:
            cut()
        for token in _TOKEN.split(line):
            if not token:
                continue
            if token.startswith("<"):
                if (m := _CLOSE_TAG.fullmatch(token)) and stack and stack[-1][0] == m.group(1):
                    stack.pop()
                elif m := _OPEN_TAG.fullmatch(token):
                    stack.append((m.group(1), token))
                current.append(token)
                continue
            pieces = [token] if token.startswith("&") else [token[i : i + limit] for i in range(0, len(token), limit)]
            for piece in pieces:
                piece_size = 1 if token.startswith("&") else len(piece)
                if size + piece_size > limit:
                    cut()
                current.append(piece)
                size += piece_size
    if size or not chunks:
        cut()
    return [c for c in chunks if c.strip()]


class SplitLongMessages(BaseRequestMiddleware):
    """A sendMessage over the limit becomes several; the keyboard rides on the last one."""

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        if not isinstance(method, SendMessage) or visible_length(method.text) <= LIMIT:
            return await make_request(bot, method)
        parts = split_html(method.text)
        response: Any = None
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            piece = method.model_copy(
                update={
                    "text": part,
                    "reply_markup": method.reply_markup if last else None,
                    "reply_parameters": method.reply_parameters if index == 0 else None,
                }
            )
            response = await make_request(bot, piece)  # type: ignore[arg-type]
        return response  # type: ignore[no-any-return]


class RetryAfter(BaseRequestMiddleware):
    """On 429, wait what Telegram asks (bounded) and try again."""

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        attempt = 0
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                attempt += 1
                if attempt > MAX_RETRIES or exc.retry_after > MAX_WAIT:
                    raise
                log.info("flood control on %s: waiting %ss", type(method).__name__, exc.retry_after)
                await asyncio.sleep(exc.retry_after)


class PinResponseModels(BaseRequestMiddleware):
    """Keeps ``Response[T]`` alive for every method used.

    aiogram parses each reply with ``Response[method.__returning__]``; pydantic
    caches parametrized models only weakly, so once the garbage collector runs
    every Bot API call rebuilds that model class (a profile of the webhook path
    showed it at 11% of all CPU). One strong reference per method type ends it.
    """

    def __init__(self) -> None:
        self._pinned: dict[type[TelegramMethod[Any]], type[Response[Any]]] = {}

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot, method: TelegramMethod[TelegramType]
    ) -> Response[TelegramType]:
        kind = type(method)
        if kind not in self._pinned:
            self._pinned[kind] = Response[method.__returning__]  # type: ignore[name-defined]
        return await make_request(bot, method)


def install(bot: Bot) -> None:
    # Registration order: the first registered is the outermost.
    bot.session.middleware(PinResponseModels())
    bot.session.middleware(SplitLongMessages())
    bot.session.middleware(RetryAfter())
