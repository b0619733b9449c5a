"""The dashboard dialog alone, with aiogram-dialog's test tools (BotClient, MockMessageManager) and fakes
for the services: windows, navigation and back, the premium/locked panels and the WebApp button."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from aiogram import Dispatcher, Router
from aiogram.filters import Command
from aiogram.types import Message, TelegramObject
from aiogram.utils.i18n import ConstI18nMiddleware
from aiogram_dialog import DialogManager, StartMode, setup_dialogs
from aiogram_dialog.test_tools import BotClient, MockMessageManager
from aiogram_dialog.test_tools.keyboard import InlineButtonTextLocator

from bot.i18n import create_i18n
from dialogs.dashboard import dashboard_dialog
from dialogs.states import Dashboard
from domain.analytics.service import Portfolio
from domain.market.models import Position, Side
from domain.tiers import Feature, Tier, TierCatalog
from domain.trading.models import AccountKind

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
FREE = Tier("free", 0, 0, 0, 20, 10, {}, frozenset())
PRO = Tier("pro", 2, 2999, 1500, 120, 60, {}, frozenset({Feature.DASHBOARDS, Feature.WEB_APP}))


@dataclass
class FakeAnalytics:
    positions: list[Position]

    def now(self) -> datetime:
        return NOW

    async def portfolio(self, uow: Any, user_id: int, tier: Tier) -> Portfolio:
        floating = sum(p.profit for p in self.positions)
        return Portfolio(AccountKind.DEMO, 5000001, "USD", 10_000.0, 10_000.0 + floating, 9_000.0, 12.5, floating,
                         self.positions, {p.symbol: 5 for p in self.positions})  # fmt: skip


class Deps:
    """What our middlewares and the Dispatcher give handlers in the real app."""

    def __init__(self, tier: Tier, analytics: FakeAnalytics, web_public_url: str | None) -> None:
        self.values = {
            "user": SimpleNamespace(id=1, timezone="UTC"),
            "tier": tier,
            "tiers": TierCatalog([FREE, PRO]),
            "analytics": analytics,
            "agents": object(),
            "uow": object(),
            "settings": SimpleNamespace(web_public_url=web_public_url),
        }

    async def __call__(
        self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]], event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:  # fmt: skip
        data.update(self.values)
        return await handler(event, data)


def build(
    tier: Tier, positions: list[Position], web_public_url: str | None = None
) -> tuple[BotClient, MockMessageManager]:
    dp = Dispatcher()
    dp.update.outer_middleware(Deps(tier, FakeAnalytics(positions), web_public_url))
    dp.update.outer_middleware(ConstI18nMiddleware("en", create_i18n()))
    starter = Router()

    @starter.message(Command("analytics"))
    async def start(message: Message, dialog_manager: DialogManager) -> None:
        await dialog_manager.start(Dashboard.main, mode=StartMode.RESET_STACK)

    dp.include_routers(starter, dashboard_dialog())
    messages = MockMessageManager()
    setup_dialogs(dp, message_manager=messages)
    return BotClient(dp), messages


POSITION = Position(7, "EURUSD", Side.BUY, 0.5, 1.1, 1.105, None, None, 25.0, int(NOW.timestamp()))


async def test_main_window_portfolio_and_back() -> None:
    client, messages = build(PRO, [POSITION])
    await client.send("/analytics")
    main = messages.one_message()
    assert "Dashboard</b> · demo account 5000001" in main.text and "1 open position" in main.text
    assert "P/L today: +37.50 USD (closed +12.50 USD, open +25.00 USD)" in main.text
    messages.reset_history()
    await client.click(main, InlineButtonTextLocator(".*Portfolio"))
    portfolio = messages.one_message()
    assert "#7 EURUSD BUY 0.5 @ 1.10000 → 1.10500 · P/L 25.00 USD" in portfolio.text
    assert portfolio.reply_markup.inline_keyboard[0][0].text == "✖️ Close #7 EURUSD"
    messages.reset_history()
    await client.click(portfolio, InlineButtonTextLocator(".*Back"))
    assert "Dashboard</b>" in messages.one_message().text


@pytest.mark.parametrize(("tier", "shown", "hidden"), [
    (PRO, ["👀 Watchlist", "🤖 Agents", "🌐 Web dashboard"], ["🔒 Watchlist", "🔒 Agents"]),
    (FREE, ["🔒 Watchlist", "🔒 Agents"], ["👀 Watchlist", "🤖 Agents", "🌐 Web dashboard"]),
])  # fmt: skip
async def test_panels_by_tier(tier: Tier, shown: list[str], hidden: list[str]) -> None:
    client, messages = build(tier, [], web_public_url="https://example.org")
    await client.send("/analytics")
    labels = [b.text for row in messages.one_message().reply_markup.inline_keyboard for b in row]
    assert all(label in labels for label in shown) and not any(label in labels for label in hidden)


async def test_locked_window_names_the_plan() -> None:
    client, messages = build(FREE, [])
    await client.send("/analytics")
    main = messages.one_message()
    messages.reset_history()
    await client.click(main, InlineButtonTextLocator(".*Agents"))
    locked = messages.one_message()
    assert "More panels with an upgrade" in locked.text and "come with the Pro plan" in locked.text
