"""/performance (metrics + equity curve) and /analytics (the aiogram-dialog dashboard).

/analytics lives in :func:`make_dialog_router`, the one router that carries
aiogram-dialog's middlewares (a per-chat lock and the dialog stack, read and
written in FSM storage on every event they see): the Dispatcher includes it
after every command router, so only the dashboard and its buttons pay for them.
"""

from __future__ import annotations

import asyncio

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import BufferedInputFile, CallbackQuery, Message
from aiogram_dialog import DialogManager, StartMode

from bot.views.analytics import (
    CAPTION_LIMIT,
    chart_caption,
    chart_title,
    drawdown_label,
    performance_empty,
    performance_text,
    performance_usage,
)
from bot.views.menu import MenuCB
from dialogs.dashboard import dashboard_dialog
from dialogs.states import Dashboard
from domain.analytics import chart
from domain.analytics.metrics import Period
from domain.analytics.service import AnalyticsService
from domain.db.uow import UnitOfWork
from domain.tiers import Tier
from domain.users import User


def make_router() -> Router:
    router = Router(name=__name__)

    @router.message(Command("performance"))
    async def performance(
        message: Message, user: User, tier: Tier, uow: UnitOfWork, analytics: AnalyticsService
    ) -> None:
        args = (message.text or "").split()[1:]
        period = Period.parse(args[0] if args else None) if len(args) <= 1 else None
        if period is None:
            await message.answer(performance_usage())
            return
        report = await analytics.report(uow, user.id, tier, period, tz=user.timezone)
        if report.empty:
            await message.answer(performance_empty(report))
            return
        text = performance_text(report, tier.code)
        png = await asyncio.to_thread(
            chart.render, chart_title(report), report.equity, report.drawdown, drawdown_label()
        )
        photo = BufferedInputFile(png, filename=f"equity_{period.value}.png")
        if len(text) <= CAPTION_LIMIT:
            await message.answer_photo(photo, caption=text)
        else:
            await message.answer(text)
            await message.answer_photo(photo, caption=chart_caption(report))

    return router


def make_dialog_router() -> Router:
    router = Router(name=f"{__name__}.dialogs")
    router.include_router(dashboard_dialog())

    @router.message(Command("analytics"))
    @router.callback_query(MenuCB.filter(F.target == "analytics"))
    async def dashboard(event: Message | CallbackQuery, dialog_manager: DialogManager) -> None:
        await dialog_manager.start(Dashboard.main, mode=StartMode.RESET_STACK)

    return router
