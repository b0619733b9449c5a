"""/start and /help: the welcome menu and the generated command list."""

from __future__ import annotations

from aiogram import html
from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import gettext as _

from bot.registry import CATEGORY_TITLES, MENU_PREFIX, Registry
from bot.views import View
from bot.views.common import Button, feature_name, keyboard, tier_name
from bot.views.plans import PlansCB, limits_line
from domain.tiers import Tier, TierCatalog
from domain.users import User


class MenuCB(CallbackData, prefix=MENU_PREFIX):
    target: str


def start_view(user: User, tier: Tier, registry: Registry, tiers: TierCatalog, *, new: bool) -> View:
    greeting = _("👋 Welcome, {name}!") if new else _("👋 Welcome back, {name}!")
    lines = [
        greeting.format(name=html.quote(user.first_name)),
        _("I'm Hybrid Trader, your AI trading assistant for MetaTrader 5."),
        "",
        _("Your plan: <b>{tier}</b>").format(tier=tier_name(tier.code)),
        limits_line(tier),
    ]
    if tier.features:
        lines.append(_("Included: {features}").format(features=", ".join(feature_name(f) for f in sorted(tier.features))))
    lines += ["", _("Pick a section below, or send /help for every command.")]
    buttons: list[Button] = [
        (("" if registry.allowed(c, tier, tiers) else "🔒 ") + _(c.button or ""), MenuCB(target=c.name))
        for c in registry.menu()
    ]
    if tier.rank < max(t.rank for t in tiers):
        buttons.append((_("💎 Plans"), PlansCB()))
    return "\n".join(lines), keyboard(buttons)


def help_view(tier: Tier, registry: Registry, tiers: TierCatalog) -> View:
    lines = [_("<b>📖 What I can do</b>")]
    locked: list[str] = []
    for category, commands in registry.by_category().items():
        usable = [c for c in commands if registry.allowed(c, tier, tiers)]
        for command in commands:
            if command not in usable:
                needed = registry.required_tier(command, tiers)
                locked.append(
                    _("/{name} — {description} ({tier})").format(
                        name=command.name,
                        description=_(command.description),
                        tier=tier_name(needed.code) if needed else "—",
                    )
                )
        if usable:
            lines += ["", f"<b>{_(CATEGORY_TITLES[category])}</b>"]
            lines += [f"/{c.name} — {_(c.description)}" for c in usable]
    if locked:
        lines += ["", _("<b>🔒 Unlocked by upgrading</b>"), *locked]
    lines += ["", _("Your plan: {tier}. /cancel stops any step in progress.").format(tier=tier_name(tier.code))]
    return "\n".join(lines), None
