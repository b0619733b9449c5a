"""Texts of the web view (Telegram Mini App), sent to the page in the user's language by ``/api/me``.

The page's JavaScript holds no wording of its own: every label it shows comes
from :func:`labels`, translated like every chat message.
"""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _

from bot.views.common import feature_name, tier_name
from domain.tiers import Feature


def labels() -> dict[str, str]:
    """Every label the page shows, keyed by the name the JavaScript uses."""
    return {
        "title": _("Hybrid Trader"),
        "nav_dashboard": _("Dashboard"),
        "nav_chart": _("Chart"),
        "nav_agents": _("Agents"),
        "period_today": _("Today"),
        "period_week": _("Week"),
        "period_month": _("Month"),
        "period_all": _("All time"),
        "equity": _("Equity"),
        "drawdown": _("Drawdown"),
        "pnl_by_symbol": _("P/L by symbol"),
        "net_pnl": _("Net P/L"),
        "return_pct": _("Return"),
        "win_rate": _("Win rate"),
        "profit_factor": _("Profit factor"),
        "max_drawdown": _("Max drawdown"),
        "sharpe": _("Sharpe"),
        "trades": _("Trades"),
        "buy_and_hold": _("Buy and hold"),
        "platform_median": _("Median of your plan"),
        "open_positions": _("Open positions"),
        "symbol": _("Symbol"),
        "side": _("Side"),
        "volume": _("Volume"),
        "price": _("Price"),
        "profit": _("Profit"),
        "buy": _("buy"),
        "sell": _("sell"),
        "flat": _("flat"),
        "no_trades": _("No closed trades in this period yet."),
        "no_positions": _("No open positions."),
        "live": _("Live updates"),  # the socket is connected (prices may still be simulated: the badge says so)
        "offline": _("reconnecting…"),
        "timeframe": _("Timeframe"),
        "show": _("Show"),
        "alert_level": _("alert"),
        "your_trades": _("Your trades"),
        "signals": _("Agent signals"),
        "no_signals": _("No agent signals for this symbol yet."),
        "weights": _("Agent weights over time"),
        "votes": _("Latest votes"),
        "agent": _("Agent"),
        "vote": _("Vote"),
        "confidence": _("Confidence"),
        "weight": _("Weight"),
        "hit_rate": _("Hit rate"),
        "consensus": _("Consensus"),
        "agreement": _("Agreement"),
        "status_pending": _("pending"),
        "status_hit": _("hit"),
        "status_miss": _("miss"),
        "no_history": _("No weight history yet: weights move as signals resolve."),
        "simulated": _("Simulated prices"),
        "simulated_hint": _("These prices come from the simulated terminal, not from a market."),
        "open": _("Opening"),
        "high": _("High"),
        "low": _("Low"),
        "close": _("Closing"),
        "chart_label": _("Price chart of {symbol}, {tf}: drag to pan, scroll or pinch to zoom."),
        "zoom_in": _("Zoom in"),
        "zoom_out": _("Zoom out"),
        "zoom_reset": _("Show all"),
        "vote_history": _("Votes over the last bars"),
        "vote_history_hint": _("Each column is a closed bar, newest on the right: ▲ buy, ▼ sell, · flat."),
        "no_votes": _("No votes recorded yet: they are stored at every closed bar."),
        "weights_per_bar": _("Weight at each bar"),
        "charts_by": _("Charts by {name}"),
        "loading": _("Loading…"),
        "error": _("Something went wrong. Pull to refresh or reopen the app."),
        "unauthorized": unauthorized(),
        "not_found": _("Unknown symbol."),
    }


def locked_message(needed_tier: str | None) -> str:
    """What a user without the web app feature sees instead of the page."""
    if needed_tier is None:
        return _("{feature} is not available on your plan.").format(feature=feature_name(Feature.WEB_APP))
    return _("{feature} comes with the {tier} plan: see /premium.").format(
        feature=feature_name(Feature.WEB_APP), tier=tier_name(needed_tier)
    )


def unauthorized() -> str:
    return _("This link has expired. Open the web app again from the bot.")


def not_a_user() -> str:
    return _("Start the bot first: send /start in the chat, then open the web app again.")
