"""aiogram routers, one module per command family, and THE command registry.

Every command is declared once in :data:`COMMANDS`. A command that is not
listed here is not served, not shown in /help and not in Telegram's menu.
"""

from __future__ import annotations

from aiogram import Router

from bot.i18n import N_
from bot.registry import Category, Command, Registry
from handlers import core, fallback, settings, status

COMMANDS: tuple[Command, ...] = (
    Command("start", core.make_router, N_("Main menu"), Category.CORE),
    Command("help", core.make_router, N_("What I can do"), Category.CORE, button=N_("📖 Help")),
    Command("status", status.make_router, N_("System status and your quotas"), Category.CORE, button=N_("🩺 Status")),
    Command(
        "config",
        settings.make_router,
        N_("Language, time zone, notifications"),
        Category.CORE,
        button=N_("⚙️ Settings"),
        callbacks=("cfg",),
    ),
    Command("cancel", core.make_router, N_("Stop the current step"), Category.CORE),
)


def default_registry() -> Registry:
    return Registry(COMMANDS)


def last_routers() -> list[Router]:
    """Routers that must come after every command router."""
    return [fallback.make_router()]
