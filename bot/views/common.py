"""Shared wording: tier and feature names, durations, on/off marks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _, ngettext

from bot.i18n import N_
from domain.tiers import Feature, Quota, Tier

TIER_NAMES = {
    "free": N_("Free"),
    "basic": N_("Basic"),
    "pro": N_("Pro"),
    "enterprise": N_("Enterprise"),
}

FEATURE_NAMES = {
    Feature.DEMO_TRADING: N_("Demo trading account"),
    Feature.CHARTS: N_("Candlestick charts"),
    Feature.PRICE_ALERTS: N_("Price alerts"),
    Feature.SIGNALS_DIGEST: N_("Daily AI signal digest"),
    Feature.LIVE_TRADING: N_("Live MT5 account trading"),
    Feature.ANALYTICS: N_("Performance analytics"),
    Feature.PRIORITY_SUPPORT: N_("Priority support"),
    Feature.AUTO_TRADING: N_("Auto-trading from AI consensus"),
    Feature.ALL_AGENTS: N_("All AI agents"),
    Feature.REALTIME_SIGNALS: N_("Real-time AI signals"),
    Feature.DASHBOARDS: N_("Inline dashboards"),
    Feature.WEB_APP: N_("Chart web app"),
    Feature.MULTI_ACCOUNT: N_("Several MT5 accounts"),
}

QUOTA_NAMES = {
    Quota.ALERTS: N_("price alerts"),
    Quota.AI_PER_DAY: N_("AI analyses per day"),
    Quota.WATCHLIST: N_("symbols on watch"),
}


def tier_name(code: str) -> str:
    return _(TIER_NAMES.get(code, code))


def feature_name(feature: Feature) -> str:
    return _(FEATURE_NAMES[feature])


def quota_name(quota: Quota) -> str:
    return _(QUOTA_NAMES[quota])


def quota_count(quota: Quota, n: int) -> str:
    """``n`` of a quota as a counted phrase ("1 price alert", "3 price alerts")."""
    if quota is Quota.ALERTS:
        return ngettext("{n} price alert", "{n} price alerts", n).format(n=n)
    if quota is Quota.AI_PER_DAY:
        return ngettext("{n} AI analysis per day", "{n} AI analyses per day", n).format(n=n)
    return ngettext("{n} symbol on watch", "{n} symbols on watch", n).format(n=n)


def price(tier: Tier) -> str:
    """A plan's price as the chat shows it: in Telegram plans are sold for Stars only."""
    if not tier.is_paid:
        return _("free")
    return _("{stars} ⭐ every 30 days").format(stars=tier.price_stars)


def ai_quota_line(used: int, limit: int, renews_at: datetime, tz: str) -> str:
    """The day's AI analyses and when they renew, in the user's time (the quota day is the UTC day)."""
    try:
        zone = ZoneInfo(tz)
    except (KeyError, ValueError):
        zone = ZoneInfo("UTC")
    return _("AI analyses today: {used} / {limit} · renew at {time} (midnight UTC)").format(
        used=used, limit=limit, time=renews_at.astimezone(zone).strftime("%H:%M")
    )


def on_off(value: bool) -> str:
    return _("on") if value else _("off")


def duration(seconds: float) -> str:
    minutes, _sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return _("{d} d {h} h").format(d=days, h=hours)
    if hours:
        return _("{h} h {m} min").format(h=hours, m=minutes)
    return _("{m} min").format(m=minutes)


Button = tuple[str, CallbackData | str]


def keyboard(buttons: Sequence[Button], widths: int | Sequence[int] = 2) -> InlineKeyboardMarkup:
    """Rows of callback buttons, built without re-validation (aiogram's builder deep-copies each one)."""
    rows: list[list[InlineKeyboardButton]] = []
    pending = [
        InlineKeyboardButton.model_construct(
            text=text, callback_data=data.pack() if isinstance(data, CallbackData) else data
        )
        for text, data in buttons
    ]
    sizes = [widths] if isinstance(widths, int) else list(widths)
    index = 0
    while pending:
        size = sizes[min(index, len(sizes) - 1)]
        rows.append(pending[:size])
        pending = pending[size:]
        index += 1
    return InlineKeyboardMarkup.model_construct(inline_keyboard=rows)


# ---- the "simulated" mark: every price, chart, balance and alert from the simulated terminal carries it ----
def simulated_prices() -> str:
    """Beside quotes, charts and alerts when market data comes from the simulated terminal (MarketHub.simulated)."""
    return _("🧪 Simulated prices from the built-in simulator, not market quotes.")


def simulated_chart_label() -> str:
    """Drawn into a chart image of simulated bars (plain text: the image font has no emoji)."""
    return _("SIMULATED DATA")


def simulated_account(demo: bool) -> str:
    """Under a balance, positions, order previews and fills of an account that trades simulated prices."""
    if demo:
        return _("🧪 Demo account: it trades simulated prices, with no real money.")
    return _("🧪 This account is on the simulated terminal: simulated prices, no real money.")
