"""/ai, /agents and /signals: the AI agents' analysis, roster and signals with the watchlist."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InaccessibleMessage, Message

from bot.ui import show
from bot.views.agents import (
    SignalsCB,
    ai_usage,
    analysis_view,
    follow_keyboard,
    roster_view,
    signals_view,
    subscribed_note,
)
from bot.views.market import symbol_suggestions
from domain.agents.service import AgentService
from domain.db.uow import UnitOfWork
from domain.errors import Forbidden
from domain.market.models import Timeframe
from domain.tiers import Tier
from domain.trading.models import SymbolNotFound
from domain.users import User


def _args(message: Message) -> list[str]:
    parts = (message.text or "").split(maxsplit=1)
    return parts[1].split() if len(parts) > 1 else []


def make_router() -> Router:
    router = Router(name=__name__)

    @router.message(Command("ai"))
    async def ai(message: Message, user: User, tier: Tier, uow: UnitOfWork, agents: AgentService) -> None:
        args = _args(message)
        if not args or len(args) > 2:
            await show(message, ai_usage())
            return
        try:
            tf = Timeframe(args[1].upper()) if len(args) > 1 else Timeframe.H1
        except ValueError:
            await show(message, ai_usage())
            return
        try:
            analysis = await agents.analyse(uow, user, tier, args[0], tf)
        except SymbolNotFound as exc:
            await message.answer(symbol_suggestions(exc.params["symbol"], exc.params["suggestions"]))
            return
        await show(message, analysis_view(analysis, user.id, user.timezone))

    @router.message(Command("agents"))
    async def roster(message: Message, user: User, tier: Tier, uow: UnitOfWork, agents: AgentService) -> None:
        await show(message, roster_view(await agents.roster(uow, user, tier)))

    @router.message(Command("signals"))
    async def signals(message: Message, user: User, tier: Tier, uow: UnitOfWork, agents: AgentService) -> None:
        args = _args(message)
        try:
            page = await agents.signals(uow, user, tier, args[0] if args else None)
        except SymbolNotFound as exc:
            await message.answer(symbol_suggestions(exc.params["symbol"], exc.params["suggestions"]))
            return
        await show(message, signals_view(page, user.id, user.timezone))

    @router.callback_query(SignalsCB.filter())
    async def signals_button(
        query: CallbackQuery, callback_data: SignalsCB, user: User, tier: Tier, uow: UnitOfWork, agents: AgentService
    ) -> None:
        data = callback_data
        if data.uid != user.id:
            raise Forbidden("not the owner of this message", user_id=user.id)
        if data.action not in ("page", "sub", "unsub", "drop", "follow", "unfollow"):
            await query.answer()
            return
        symbol = data.symbol or None
        if data.action in ("sub", "follow"):
            symbol = await agents.subscribe(uow, user, tier, data.symbol)
        elif data.action in ("unsub", "drop", "unfollow"):
            await agents.unsubscribe(uow, user, data.symbol)
        if data.action in ("follow", "unfollow"):  # pressed under an /ai analysis: keep it, swap the button
            following = data.action == "follow"
            message = query.message
            if message is not None and not isinstance(message, InaccessibleMessage):
                await message.edit_reply_markup(reply_markup=follow_keyboard(data.symbol, data.tf, user.id, following))
            await query.answer(subscribed_note(symbol or data.symbol, following))
            return
        if data.action == "drop":  # from the full list: show the full list again
            symbol = None
        page = await agents.signals(uow, user, tier, symbol, max(0, data.page))
        await show(query, signals_view(page, user.id, user.timezone))

    return router
