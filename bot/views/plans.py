"""Plans: the tier comparison, and what a locked command says."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.registry import Command
from bot.views import View
from bot.views.common import feature_name, keyboard, price, quota_count, tier_name
from domain.tiers import Feature, Quota, Tier, TierCatalog


class PlansCB(CallbackData, prefix="plans"):
    pass


def limits_line(tier: Tier) -> str:
    parts = [ngettext("{n} request/min", "{n} requests/min", tier.rate_per_minute).format(n=tier.rate_per_minute)]
    parts += [quota_count(q, tier.quota(q)) for q in Quota]
    return " · ".join(parts)


def plans_view(tiers: TierCatalog, current: Tier) -> View:
    lines = [_("<b>💎 Plans</b>")]
    previous: Tier | None = None
    for tier in tiers:
        mark = _(" (your plan)") if tier.code == current.code else ""
        lines.append("")
        lines.append(f"<b>{tier_name(tier.code)}</b> — {price(tier)}{mark}")
        lines.append(limits_line(tier))
        added = sorted(tier.features - (previous.features if previous else frozenset()))
        if added:
            label = _("Includes:") if previous is None else _("Adds:")
            lines.append(f"{label} " + ", ".join(feature_name(f) for f in added))
        previous = tier
    from bot.views.billing import BillCB  # billing builds on this module

    upgrades = [
        (_("⬆️ {tier}").format(tier=tier_name(t.code)), BillCB(action="plan", tier=t.code))
        for t in tiers
        if t.rank > current.rank
    ]
    return "\n".join(lines), keyboard(upgrades, 3) if upgrades else None


def locked_view(command: Command, needed: Tier | None) -> View:
    if needed is None:
        return _("🔒 /{command} isn't available on any plan right now.").format(command=command.name), None
    text = _("🔒 /{command} needs the {tier} plan ({price}).").format(
        command=command.name, tier=tier_name(needed.code), price=price(needed)
    )
    return text, keyboard([(_("💎 Compare plans"), PlansCB())])


def feature_locked_view(feature: Feature, needed: Tier | None) -> View:
    """What a button of a feature the plan lacks answers (a hidden dashboard panel pressed anyway)."""
    if needed is None:
        return _("🔒 {feature} isn't available on any plan right now.").format(feature=feature_name(feature)), None
    text = _("🔒 {feature} needs the {tier} plan ({price}).").format(
        feature=feature_name(feature), tier=tier_name(needed.code), price=price(needed)
    )
    return text, keyboard([(_("💎 Compare plans"), PlansCB())])
