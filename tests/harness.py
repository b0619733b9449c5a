"""Drives the real Dispatcher with real Updates; replies travel over HTTP to the fake Bot API."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import (
    CallbackQuery,
    Chat,
    Message,
    PreCheckoutQuery,
    RefundedPayment,
    SuccessfulPayment,
    Update,
    User as TgUser,
)

from bot.app import App, create_app, create_bot
from bot.registry import Registry
from bot.settings import Settings
from domain.db.uow import UnitOfWork
from domain.ratelimit import RateLimiter
from domain.users import User
from tests.fakes.telegram import TOKEN, Call, FakeTelegram

_ids = itertools.count(1)


class Harness:
    # Users have accepted the current disclosures before their first update (trading is otherwise
    # locked behind the risk disclosure); a test of the gate itself sets ``harness.onboarded = False``.
    onboarded: bool = True
    # Proactive messages an update queued are sent before ``send``/``press`` return (the outbox sender's job
    # in production); outbox tests set it to False to drive the sender themselves.
    deliver_outbox: bool = True

    def __init__(self, app: App, bot: Bot, telegram: FakeTelegram) -> None:
        self.app = app
        self.bot = bot
        self.telegram = telegram
        self._onboarded_ids: set[int] = set()

    def tg_user(self, user_id: int, lang: str | None = "en", first_name: str = "Ann") -> TgUser:
        return TgUser(id=user_id, is_bot=False, first_name=first_name, language_code=lang, username=f"user{user_id}")

    async def feed(self, update: Update) -> list[Call]:
        await self._onboard(update)
        before = len(self.telegram.calls)
        await self.app.dispatcher.feed_update(self.bot, update)
        await self.app.replays.settle()  # a command the disclosure blocked, run once accepted (its own update)
        if self.deliver_outbox:  # what the update queued for other users (ticket replies, notices) goes out too
            await self.app.drain_outbox(self.bot)
        return self.telegram.calls[before:]

    async def send(
        self, text: str | None, *, user: int = 1001, lang: str | None = "en", chat: Chat | None = None, **extra: Any
    ) -> list[Call]:
        """A message from ``user`` in their private chat with the bot, or in ``chat`` (a group)."""
        message = Message(
            message_id=next(_ids),
            date=datetime.now(UTC),
            chat=chat or Chat(id=user, type="private"),
            from_user=self.tg_user(user, lang, extra.pop("first_name", "Ann")),
            text=text,
            **extra,
        )
        return await self.feed(Update(update_id=next(_ids), message=message))

    async def press(
        self, data: str, *, user: int = 1001, lang: str | None = "en", message_id: int = 1, chat: Chat | None = None
    ) -> list[Call]:
        """``user`` pressing a button of a bot message in their private chat, or in ``chat`` (a group)."""
        message = Message(
            message_id=message_id, date=datetime.now(UTC), chat=chat or Chat(id=user, type="private"), text="…"
        )
        query = CallbackQuery(
            id=str(next(_ids)), from_user=self.tg_user(user, lang), chat_instance="ci", message=message, data=data
        )
        return await self.feed(Update(update_id=next(_ids), callback_query=query))

    async def pre_checkout(
        self, payload: str, total: int, *, user: int = 1001, lang: str | None = "en", currency: str = "XTR"
    ) -> list[Call]:
        """Telegram asking whether a Stars payment may go ahead."""
        query = PreCheckoutQuery(
            id=str(next(_ids)), from_user=self.tg_user(user, lang), currency=currency, total_amount=total,
            invoice_payload=payload,
        )  # fmt: skip
        return await self.feed(Update(update_id=next(_ids), pre_checkout_query=query))

    async def pay(
        self, payload: str, total: int, *, charge_id: str, user: int = 1001, lang: str | None = "en",
        recurring: bool = False, first_recurring: bool = False, expires: int | None = None,
    ) -> list[Call]:  # fmt: skip
        """A successful_payment service message (a Stars purchase or subscription renewal)."""
        payment = SuccessfulPayment(
            currency="XTR", total_amount=total, invoice_payload=payload, telegram_payment_charge_id=charge_id,
            provider_payment_charge_id="", is_recurring=recurring or None, is_first_recurring=first_recurring or None,
            subscription_expiration_date=expires,
        )  # fmt: skip
        return await self.send(None, user=user, lang=lang, successful_payment=payment)

    async def refunded(self, payload: str, total: int, *, charge_id: str, user: int = 1001) -> list[Call]:
        """A refunded_payment service message."""
        refund = RefundedPayment(
            currency="XTR", total_amount=total, invoice_payload=payload, telegram_payment_charge_id=charge_id
        )
        return await self.send(None, user=user, refunded_payment=refund)

    async def _onboard(self, update: Update) -> None:
        sender = update.message.from_user if update.message else None
        sender = update.callback_query.from_user if update.callback_query else sender
        if not self.onboarded or sender is None or sender.id in self._onboarded_ids:
            return
        self._onboarded_ids.add(sender.id)
        async with UnitOfWork(self.app.sessionmaker) as uow:
            await self.app.compliance.accept_all(uow, sender.id)

    async def stored_user(self, user_id: int) -> User | None:
        async with UnitOfWork(self.app.sessionmaker) as uow:
            return await uow.users.get(user_id)

    async def close(self) -> None:
        await self.app.close()
        await self.bot.session.close()


async def build_harness(
    settings: Settings, telegram: FakeTelegram, *, registry: Registry | None = None, limiter: RateLimiter | None = None
) -> Harness:
    app = await create_app(settings, registry=registry, limiter=limiter)
    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.url))
    return Harness(app, create_bot(settings, session=session, token=TOKEN), telegram)
