"""The disclosure gate: what moves money or links an account waits until the current risk disclosure is accepted.

Placed after the tier gate: a command the plan does not include says so first;
one the plan includes asks for the disclosure. Which uses of a command move
money is read from the registry (``Command.money``), so a new order command is
gated the day it is declared; reading commands (quotes, charts, alerts, AI
analyses, balance, positions, history) pass.

The blocked update is remembered server-side, per user (one, the latest; it
expires): once the disclosure is accepted, :class:`DisclosureReplay` feeds it
again through the whole chain, so the command runs at once and every gate still
applies. Nothing of it travels in callback data a user could forge.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.fsm.storage.base import BaseStorage, StorageKey
from aiogram.types import CallbackQuery, Chat, Message, TelegramObject, Update
from aiogram.types import User as TgUser

from bot.middlewares.common import interactive, notify
from bot.registry import Command, command_text
from bot.views import View
from bot.views.compliance import disclosure_gate
from domain.compliance import ComplianceService, ComplianceUnit
from domain.users import User

log = logging.getLogger(__name__)

REPLAY_DESTINY = "disclosure_replay"  # its own FSM-storage record: never mixed with a conversation's state
REPLAY_TTL = 15 * 60  # seconds a blocked command waits for the acceptance; older ones are dropped
MAX_TEXT = 4096  # a Telegram message's limit: what is kept of a blocked command's text
MAX_DATA = 64  # a Telegram callback data's limit


class ComplianceGateMiddleware(BaseMiddleware):
    def __init__(self, compliance: ComplianceService, replay: DisclosureReplay | None = None) -> None:
        self._compliance = compliance
        self._replay = replay

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        command: Command | None = data.get("command")
        user: User | None = data.get("user")
        target = interactive(event)
        if command is None or user is None or target is None:
            return await handler(event, data)
        refusal = await disclosure_refusal(self._compliance, data["uow"], command, user, target)
        if refusal is None:
            return await handler(event, data)
        if self._replay is not None:
            await self._replay.remember(data["bot"], user.id, event, target)
        text, markup = refusal
        await notify(data["bot"], target, text, markup)
        return None


async def disclosure_refusal(
    compliance: ComplianceService,
    uow: ComplianceUnit,
    command: Command,
    user: User,
    event: Message | CallbackQuery | None = None,
) -> View | None:
    """What the disclosure gate answers when ``user`` may not use ``command`` so yet (None: they may).

    The one rule for typed commands, their buttons and the dialog actions that do the same thing
    (dialogs/common.py DialogGuard, which passes no event: the bare command): only what moves money or
    links an account (``Command.money`` in the registry) waits for the disclosure.
    """
    if isinstance(event, Message):
        moves = command.moves_money(text=command_text(event))
    elif isinstance(event, CallbackQuery):
        moves = command.moves_money(data=event.data or "")
    else:
        moves = command.moves_money()
    if not moves or await compliance.trading_unlocked(uow, user.id):
        return None
    return disclosure_gate()


class DisclosureReplay:
    """Keeps each user's latest update the disclosure blocked and, once it is accepted, runs it.

    Kept in the FSM storage (Redis with REDIS_URL, so any replica may replay it) under a destiny of its own:
    one record per user, the text or callback data cut to Telegram's limits, dropped after REPLAY_TTL. The
    replay is a fresh Update through the Dispatcher (every gate applies again) with the id ``-original``, so
    the de-duplication ledger lets one blocked update run at most once. It runs as a task after the accepting
    update finished: that update holds a handling slot, and waiting inside it for a second one could exhaust
    the slots (``settle`` waits for the tasks: tests, the console, shutdown).
    """

    def __init__(self, storage: BaseStorage, clock: Callable[[], float] = time.time) -> None:
        self._storage = storage
        self._clock = clock
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def _key(bot: Bot, user_id: int) -> StorageKey:
        return StorageKey(bot_id=bot.id, chat_id=user_id, user_id=user_id, destiny=REPLAY_DESTINY)

    async def remember(self, bot: Bot, user_id: int, update: Update, event: Message | CallbackQuery) -> None:
        if update.update_id <= 0:  # a replay refused again (a newer disclosure version): not kept twice
            return
        message = event if isinstance(event, Message) else event.message
        if message is None or message.chat.id != user_id:  # money commands answer in the private chat only
            return
        record: dict[str, Any] = {"update_id": update.update_id, "at": self._clock(), "message_id": message.message_id}
        if isinstance(event, Message):
            record.update(kind="text", text=(command_text(event) or "")[:MAX_TEXT])
        else:
            record.update(kind="press", data=(event.data or "")[:MAX_DATA])
        await self._storage.set_data(self._key(bot, user_id), record)

    async def take(self, bot: Bot, user_id: int) -> dict[str, Any] | None:
        """The user's blocked update, removed from the storage (None: none, or it expired)."""
        key = self._key(bot, user_id)
        record = await self._storage.get_data(key)
        if not record:
            return None
        await self._storage.set_data(key, {})
        if not isinstance(record.get("at"), (int, float)) or self._clock() - record["at"] > REPLAY_TTL:
            return None
        return record

    def start(self, dispatcher: Dispatcher, bot: Bot, sender: TgUser, record: dict[str, Any],
              query_id: str | None) -> None:  # fmt: skip
        """Run ``record`` (from :meth:`take`) as ``sender``'s update once the current one is done.

        A press is replayed under ``query_id``, the accepting press's id: Telegram lets a query be answered
        once, so the accepting handler leaves it to the replay.
        """
        update = _update(record, sender, query_id)
        if update is None:
            return
        task = asyncio.create_task(self._run(dispatcher, bot, update), name=f"disclosure-replay-{update.update_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, dispatcher: Dispatcher, bot: Bot, update: Update) -> None:
        try:
            await dispatcher.feed_update(bot, update)
        except Exception:  # the error layer answered the user already; a replay never takes the process down
            log.exception("replay of a blocked update failed")

    async def settle(self) -> None:
        """Wait until every started replay has run."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _update(record: dict[str, Any], sender: TgUser, query_id: str | None) -> Update | None:
    original, message_id = record.get("update_id"), record.get("message_id")
    if not isinstance(original, int) or original <= 0 or not isinstance(message_id, int):
        return None
    chat = Chat(id=sender.id, type="private")  # it was remembered from the user's private chat only
    now = datetime.now(UTC)
    if record.get("kind") == "text" and isinstance(record.get("text"), str):
        message = Message(message_id=message_id, date=now, chat=chat, from_user=sender, text=record["text"])
        return Update(update_id=-original, message=message)
    if record.get("kind") == "press" and isinstance(record.get("data"), str) and query_id is not None:
        shown = Message(message_id=message_id, date=now, chat=chat, text="…")
        query = CallbackQuery(id=query_id, from_user=sender, chat_instance="replay", message=shown,
                              data=record["data"])  # fmt: skip
        return Update(update_id=-original, callback_query=query)
    return None

