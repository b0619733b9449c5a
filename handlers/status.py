"""/status: health of every component, uptime, version, and the user's quotas."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot import __version__
from bot.ui import show
from bot.views.menu import MenuCB
from bot.observability import OpsMonitor
from bot.views.status import status_view
from domain.health import HealthService
from domain.quotas import QuotaService
from domain.tiers import Tier
from domain.trading.market import MarketHub
from domain.users import User


def make_router() -> Router:
    router = Router(name=__name__)

    @router.message(Command("status"))
    @router.callback_query(MenuCB.filter(F.target == "status"))
    async def status(
        event: Message | CallbackQuery, user: User, tier: Tier, health: HealthService, quotas: QuotaService,
        ops: OpsMonitor | None = None, market: MarketHub | None = None,
    ) -> None:
        probes = await health.check()
        figures = await ops.figures() if ops is not None else None  # the same figures as /metrics
        used = await quotas.usage(user)
        await show(event, status_view(probes, health.uptime, __version__, tier, used, figures,
                                      renews_at=quotas.renews_at(), tz=user.timezone,
                                      simulated=market is not None and market.simulated))  # fmt: skip

    return router
