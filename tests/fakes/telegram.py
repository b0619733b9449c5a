"""A stand-in for Telegram's Bot API server, on loopback, speaking the real wire format.

The product talks to it through aiogram's real AiohttpSession (TELEGRAM_API_URL),
exactly as it would talk to a self-hosted Bot API server. It records every call
(method and decoded parameters), answers with well-formed results, serves
``getUpdates`` from a queue, and can be told to fail (429 with retry_after, 403).
Opt-in (``FakeTelegram(flood=FloodControl())``), it enforces Telegram's flood
limits on messages as Telegram does, answering 429 with ``retry_after``. A text
or caption in HTML parse mode that Telegram could not parse is refused with its
400 "can't parse entities" (``tests/fakes/telegram_html.py``) and kept in ``refused``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiogram.methods as methods
from aiohttp import web

from tests.fakes import serve_on_loopback
from tests.fakes.telegram_html import entity_error

BOT_ID = 7000001
TOKEN = f"{BOT_ID}:TEST-token_for-loopback"


@dataclass
class Call:
    method: str
    params: dict[str, Any]

    @property
    def text(self) -> str:
        return str(self.params.get("text") or self.params.get("caption") or "")

    @property
    def buttons(self) -> list[tuple[str, str | None]]:
        markup = self.params.get("reply_markup") or {}
        return [(b["text"], b.get("callback_data")) for row in markup.get("inline_keyboard", []) for b in row]


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None
    times: int


# Methods that post a message to a chat: what Telegram's flood limits count.
MESSAGE_METHODS = frozenset({
    "sendmessage", "sendphoto", "senddocument", "sendvideo", "sendanimation", "sendaudio", "sendvoice",
    "sendvideonote", "sendsticker", "sendlocation", "sendvenue", "sendcontact", "sendpoll", "senddice",
    "sendmediagroup", "sendinvoice", "sendpaidmedia", "copymessage", "forwardmessage",
})  # fmt: skip


@dataclass
class FloodControl:
    """Telegram's flood limits on messages: ``global_rate`` in any second, every chat together; a private
    chat about ``chat_rate`` per second with a burst of ``chat_burst`` (a token bucket); a group or channel
    (negative chat id) ``group_per_minute`` in any minute. A message over a limit is refused (and counts
    toward none) with the seconds to wait, rounded up, as Telegram's ``retry_after``."""

    global_rate: int = 30
    chat_rate: float = 1.0
    chat_burst: float = 3.0
    group_per_minute: int = 20
    clock: Callable[[], float] = time.monotonic
    refused: dict[str, int] = field(default_factory=lambda: {"global": 0, "chat": 0, "group": 0})
    _recent: deque[float] = field(default_factory=deque)
    _buckets: dict[int, tuple[float, float]] = field(default_factory=dict)  # chat → (tokens, when)
    _groups: dict[int, deque[float]] = field(default_factory=dict)

    def admit(self, chat_id: int) -> int | None:
        """None when a message to ``chat_id`` may go now (it is counted), else its retry_after."""
        now = self.clock()
        _expire(self._recent, now - 1.0)
        waits: dict[str, float] = {}
        if len(self._recent) >= self.global_rate:
            waits["global"] = self._recent[0] + 1.0 - now
        window: deque[float] | None = None
        tokens = 0.0
        if chat_id < 0:
            window = _expire(self._groups.setdefault(chat_id, deque()), now - 60.0)
            if len(window) >= self.group_per_minute:
                waits["group"] = window[0] + 60.0 - now
        else:
            held, since = self._buckets.get(chat_id, (self.chat_burst, now))
            tokens = min(self.chat_burst, held + (now - since) * self.chat_rate)
            if tokens < 1.0:
                waits["chat"] = (1.0 - tokens) / self.chat_rate
        if waits:
            limit = max(waits, key=lambda k: waits[k])
            self.refused[limit] += 1
            return max(1, math.ceil(waits[limit]))
        self._recent.append(now)
        if window is not None:
            window.append(now)
        else:
            self._buckets[chat_id] = (tokens - 1.0, now)
        return None


def _expire(times: deque[float], before: float) -> deque[float]:
    while times and times[0] <= before:
        times.popleft()
    return times


def too_many_requests(retry_after: int) -> web.Response:
    """Telegram's flood-control answer, in its wire format."""
    body = {
        "ok": False, "error_code": 429, "description": f"Too Many Requests: retry after {retry_after}",
        "parameters": {"retry_after": retry_after},
    }  # fmt: skip
    return web.json_response(body, status=429)


@dataclass
class FakeTelegram:
    calls: list[Call] = field(default_factory=list)
    updates: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    failures: dict[str, _Failure] = field(default_factory=dict)
    url: str = ""
    flood: FloodControl | None = None  # opt-in: enforce Telegram's flood limits
    refused: list[Call] = field(default_factory=list)  # calls Telegram would refuse: text it cannot parse
    _message_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    _runner: web.AppRunner | None = None

    async def start(self) -> FakeTelegram:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner, self.url = await serve_on_loopback(app)
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def fail(self, method: str, status: int, description: str, retry_after: int | None = None, times: int = 1) -> None:
        self.failures[method.lower()] = _Failure(status, description, retry_after, times)

    def sent(self, method: str = "sendMessage") -> list[Call]:
        return [c for c in self.calls if c.method.lower() == method.lower()]

    def replies(self) -> list[Call]:
        """What a user sees: messages, edits and alert texts."""
        shown = ("sendmessage", "editmessagetext", "sendphoto", "senddocument")
        return [c for c in self.calls if c.method.lower() in shown or (c.method.lower() == "answercallbackquery" and c.params.get("text"))]

    async def _handle(self, request: web.Request) -> web.Response:
        token, method = request.match_info["token"], request.match_info["method"]
        if token != TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        params = await _params(request)
        failure = self.failures.get(method.lower())
        if failure is not None and failure.times > 0:
            failure.times -= 1
            body: dict[str, Any] = {"ok": False, "error_code": failure.status, "description": failure.description}
            if failure.retry_after is not None:
                body["parameters"] = {"retry_after": failure.retry_after}
            return web.json_response(body, status=failure.status)
        if (flooded := self.flooded(method, params)) is not None:
            return flooded
        if (refused := unparseable(params)) is not None:
            self.refused.append(Call(method, params))
            return refused
        if method.lower() == "getupdates":
            return web.json_response({"ok": True, "result": await self._next_updates(params)})
        self.calls.append(Call(method, params))
        return web.json_response({"ok": True, "result": self._result(method, params)})

    def flooded(self, method: str, params: dict[str, Any]) -> web.Response | None:
        """With ``flood`` set, the 429 answer for a message over Telegram's limits; None when it may go."""
        if self.flood is None or method.lower() not in MESSAGE_METHODS or params.get("chat_id") is None:
            return None
        try:
            chat_id = int(params["chat_id"])
        except (TypeError, ValueError):  # a @channel username: a channel of its own
            chat_id = -1 - sum(ord(c) << (8 * (i % 6)) for i, c in enumerate(str(params["chat_id"])))
        retry_after = self.flood.admit(chat_id)
        return None if retry_after is None else too_many_requests(retry_after)

    async def _next_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        timeout = min(float(params.get("timeout") or 0), 1.0)
        batch: list[dict[str, Any]] = []
        try:
            batch.append(await asyncio.wait_for(self.updates.get(), timeout or 0.01))
        except TimeoutError:
            return []
        while not self.updates.empty():
            batch.append(self.updates.get_nowait())
        return batch

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        name = method[0].upper() + method[1:]
        returning = getattr(getattr(methods, name, None), "__returning__", bool)
        rendered = str(returning)
        if name == "GetMe":
            return {"id": BOT_ID, "is_bot": True, "first_name": "Hybrid Trader", "username": "hybrid_test_bot"}
        if name == "GetWebhookInfo":
            return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
        if name == "CreateInvoiceLink":
            return f"https://t.me/$invoice-{next(self._message_ids)}"
        if "Message" in rendered and "MessageId" not in rendered:
            return self._message(params)
        if "MessageId" in rendered:
            return {"message_id": next(self._message_ids)}
        if "list" in rendered:
            return []
        return True

    def _message(self, params: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": int(params.get("message_id") or next(self._message_ids)),
            "date": int(time.time()),
            "chat": {"id": int(params.get("chat_id") or 0), "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Hybrid Trader"},
        }
        if "text" in params:
            message["text"] = params["text"]
        if "caption" in params:
            message["caption"] = params["caption"]
        if isinstance(params.get("reply_markup"), dict):
            message["reply_markup"] = params["reply_markup"]
        return message


def unparseable(params: dict[str, Any]) -> web.Response | None:
    """Telegram's 400 for a text or caption in HTML parse mode that breaks its entity rules."""
    if str(params.get("parse_mode") or "").lower() != "html":
        return None
    for key in ("text", "caption"):
        problem = entity_error(str(params.get(key) or ""))
        if problem is not None:
            body = {"ok": False, "error_code": 400, "description": f"Bad Request: can't parse entities: {problem}"}
            return web.json_response(body, status=400)
    return None


async def _params(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/json":
        return dict(await request.json())
    form = await request.post()
    params: dict[str, Any] = {}
    for key, value in form.items():
        if isinstance(value, str):
            params[key] = _decode(value)
        else:  # an uploaded file
            content = value.file.read()
            params[key] = {"filename": value.filename, "size": len(content), "content": content}
    return params


def _decode(value: str) -> Any:
    if value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
