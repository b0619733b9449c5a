"""/start (with deep links), /help, /cancel and the plans card."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.registry import Registry
from bot.ui import show
from bot.views.fallback import cancelled
from bot.views.menu import MenuCB, help_view, start_view
from bot.views.plans import PlansCB, plans_view
from domain.clock import utcnow
from domain.db.uow import UnitOfWork
from domain.referrals import ReferralService
from domain.tiers import Tier, TierCatalog
from domain.users import User


def make_router() -> Router:
    router = Router(name=__name__)

    @router.message(CommandStart())
    async def start(
        message: Message,
        command: CommandObject,
        state: FSMContext,
        uow: UnitOfWork,
        user: User,
        user_created: bool,
        tier: Tier,
        referrals: ReferralService,
        registry: Registry,
        tiers: TierCatalog,
    ) -> None:
        await state.clear()
        user = await referrals.attribute(uow, user, command.args, new_user=user_created)
        await show(message, start_view(user, tier, registry, tiers, new=user.joined_recently(utcnow())))

    @router.callback_query(MenuCB.filter(F.target == "start"))
    async def start_button(query: CallbackQuery, user: User, tier: Tier, registry: Registry, tiers: TierCatalog) -> None:
        await show(query, start_view(user, tier, registry, tiers, new=False))

    @router.message(Command("help"))
    @router.callback_query(MenuCB.filter(F.target == "help"))
    async def help_(event: Message | CallbackQuery, tier: Tier, registry: Registry, tiers: TierCatalog) -> None:
        await show(event, help_view(tier, registry, tiers))

    @router.message(Command("cancel"))
    async def cancel(message: Message, state: FSMContext) -> None:
        had_state = await state.get_state() is not None
        await state.clear()
        await message.answer(cancelled(had_state))

    @router.callback_query(PlansCB.filter())
    async def plans(query: CallbackQuery, tier: Tier, tiers: TierCatalog) -> None:
        await show(query, plans_view(tiers, tier))

    return router
