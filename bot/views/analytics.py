"""Texts of /performance and of the /analytics dashboard windows."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.i18n import N_
from bot.views.common import feature_name, on_off, tier_name
from bot.views.market import _rule_text
from bot.views.settings import LANGUAGE_NAMES, NOTIFY_NAMES
from bot.views.trading import kind_name
from domain.alerts.models import AlertRule, AlertStatus
from domain.analytics.metrics import Period
from domain.analytics.service import PerformanceReport, Portfolio
from domain.tiers import Feature
from domain.trading.models import TradingProfile
from domain.users import Notify, User

PERIOD_NAMES = {
    Period.TODAY: N_("today"),
    Period.WEEK: N_("last 7 days"),
    Period.MONTH: N_("last 30 days"),
    Period.ALL: N_("all time"),
}
CAPTION_LIMIT = 1024
TOP_SYMBOLS = 5


def period_name(period: Period) -> str:
    return _(PERIOD_NAMES[period])


def money(value: float | None, currency: str, *, sign: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+,.2f} {currency}" if sign else f"{value:,.2f} {currency}"


def pct(value: float | None, *, sign: bool = True) -> str:
    if value is None:
        return "—"
    return f"{value:+.2f}%" if sign else f"{value:.2f}%"


def num(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def performance_usage() -> str:
    return _(
        "Usage: <code>/performance [period]</code>, where period is <code>today</code>, <code>week</code>, "
        "<code>month</code> (the default) or <code>all</code>."
    )


def performance_empty(report: PerformanceReport) -> str:
    return "\n".join(
        [
            _("<b>📊 Performance</b> · {period}").format(period=period_name(report.period)),
            _("No trades yet in this period, so there is nothing to measure.")
            if report.metrics.trades == 0 and report.period is not Period.ALL
            else _("No trades yet: open your first position with /trade, then come back here."),
            _("Equity now: {v}").format(v=money(report.equity_now, report.currency)),
        ]
    )


def performance_text(report: PerformanceReport, tier_code: str) -> str:
    """The compact metrics message (HTML)."""
    r, ccy = report.metrics, report.currency
    lines = [
        _("<b>📊 Performance</b> · {period} · {kind} account {login}").format(
            period=period_name(report.period), kind=kind_name(report.account_kind), login=report.login
        ),
        _("Net P/L: <b>{net}</b> ({ret})").format(net=money(r.net, ccy, sign=True), ret=pct(r.return_pct)),
        ngettext(
            "{n} trade · win rate {wr} · profit factor {pf}",
            "{n} trades · win rate {wr} · profit factor {pf}",
            r.trades,
        ).format(n=r.trades, wr=pct(r.win_rate, sign=False), pf=num(r.profit_factor)),
        _("Average win {win} · average loss {loss} · expectancy {exp}").format(
            win=money(r.avg_win, ccy), loss=money(r.avg_loss, ccy), exp=money(r.expectancy, ccy, sign=True)
        ),
        # both figures from one episode: the deepest fall in percent and the money it cost
        _("Max drawdown: {pct} ({money} below its peak)").format(
            pct=pct(r.max_drawdown_pct, sign=False), money=money(r.max_drawdown, ccy)
        ),
        _("Sharpe {sharpe} · Sortino {sortino} (daily, annualized)").format(
            sharpe=num(r.sharpe), sortino=num(r.sortino)
        ),
    ]
    if r.best_symbol or r.worst_symbol:
        lines.append(
            _("Best symbol: {best} · worst: {worst}").format(best=r.best_symbol or "—", worst=r.worst_symbol or "—")
        )
    lines.append(
        _("Equity now: {equity} · {n} open ({floating})").format(
            equity=money(report.equity_now, ccy),
            n=report.open_positions,
            floating=money(report.floating, ccy, sign=True),
        )
    )
    if report.by_symbol:
        lines += ["", _("<b>By symbol</b>")]
        for s in report.by_symbol[:TOP_SYMBOLS]:
            lines.append(
                ngettext(
                    "{symbol}: {net} · {n} trade · {wr} won", "{symbol}: {net} · {n} trades · {wr} won", s.trades
                ).format(symbol=s.symbol, net=money(s.net, ccy, sign=True), n=s.trades, wr=pct(s.win_rate, sign=False))
            )
        if len(report.by_symbol) > TOP_SYMBOLS:
            lines.append(_("…and {n} more").format(n=len(report.by_symbol) - TOP_SYMBOLS))
    lines += ["", _("<b>Benchmarks</b>")]
    lines.append(_("Buy and hold of your symbols: {v}").format(v=pct(report.buy_and_hold_pct)))
    if report.platform_median_pct is not None:
        lines.append(
            ngettext("Median of {n} {tier} trader: {v}", "Median of {n} {tier} traders: {v}",
                     report.platform_users).format(
                n=report.platform_users, tier=tier_name(tier_code), v=pct(report.platform_median_pct)
            )
        )
    else:
        lines.append(_("Platform median: shown once enough traders on your plan have history (kept anonymous)."))
    return "\n".join(lines)


def chart_title(report: PerformanceReport) -> str:
    return _("Equity · {period} · {currency}").format(period=period_name(report.period), currency=report.currency)


def drawdown_label() -> str:
    return _("Drawdown %")


def chart_caption(report: PerformanceReport) -> str:
    return _("📈 Equity curve and drawdown, {period}.").format(period=period_name(report.period))


# ---- the dashboard (dialogs/dashboard.py renders these in its windows) ----


def dashboard_text(p: Portfolio, tier_code: str, premium: bool, now: datetime, tz: str) -> str:
    lines = [
        _("<b>📊 Dashboard</b> · {kind} account {login}").format(kind=kind_name(p.account_kind), login=p.login),
        _("Equity: <b>{equity}</b> · balance {balance}").format(
            equity=money(p.equity, p.currency), balance=money(p.balance, p.currency)
        ),
        _("P/L today: {total} (closed {realized}, open {floating})").format(
            total=money(p.day_realized + p.day_floating, p.currency, sign=True),
            realized=money(p.day_realized, p.currency, sign=True),
            floating=money(p.day_floating, p.currency, sign=True),
        ),
        ngettext("{n} open position", "{n} open positions", len(p.positions)).format(n=len(p.positions)),
    ]
    if not premium:
        lines += ["", _("🔒 {feature}: watchlist consensus and agents panels come with {tier}.").format(
            feature=feature_name(Feature.DASHBOARDS), tier=tier_name("pro"))]  # fmt: skip
    lines += ["", _("Updated {time}").format(time=_clock(now, tz))]
    return "\n".join(lines)


def portfolio_text(p: Portfolio, now: datetime, tz: str, result: str | None = None) -> str:
    lines = [_("<b>💼 Portfolio</b> · {kind} account").format(kind=kind_name(p.account_kind))]
    if result:
        lines += [result, ""]
    if not p.positions:
        lines.append(_("No open positions. Open one with /trade."))
    for pos in p.positions:
        d = p.digits.get(pos.symbol, 5)
        icon = "🟢" if pos.profit >= 0 else "🔴"
        lines.append(
            _("{icon} #{ticket} {symbol} {side} {volume} @ {open} → {now} · P/L {pl}").format(
                icon=icon,
                ticket=pos.ticket,
                symbol=pos.symbol,
                side=pos.side.value.upper(),
                volume=f"{pos.volume:g}",
                open=f"{pos.price_open:.{d}f}",
                now=f"{pos.price_current:.{d}f}",
                pl=money(pos.profit, p.currency),
            )  # fmt: skip
        )
    if p.positions:
        lines.append(_("Floating P/L: {v}").format(v=money(p.day_floating, p.currency, sign=True)))
        lines.append(_("Tap a position to close it (you confirm first)."))
    lines.append(_("Updated {time}").format(time=_clock(now, tz)))
    return "\n".join(lines)


def close_button(ticket: int, symbol: str) -> str:
    return _("✖️ Close #{ticket} {symbol}").format(ticket=ticket, symbol=symbol)


def position_gone_text(ticket: int) -> str:
    return _("Position #{ticket} is already closed.").format(ticket=ticket)


def alerts_text(rules: Sequence[AlertRule], digits: dict[str, int], limit: int, result: str | None = None) -> str:
    lines = [_("<b>🔔 Alerts</b>")]
    if result:
        lines += [result, ""]
    if not rules:
        lines.append(_("You have no alerts yet. Add one with /alerts."))
    for r in rules:
        mark = "⏸" if r.status is AlertStatus.PAUSED else "•"
        lines.append(f"{mark} #{r.id} {_rule_text(r, digits.get(r.symbol, 5))}")
    lines.append(_("Used {used} of {limit}.").format(used=len(rules), limit=limit))
    if rules:
        lines.append(_("Tap an alert to delete it (you confirm first)."))
    return "\n".join(lines)


def alert_button(rule: AlertRule) -> str:
    return _("🗑 #{id} {symbol}").format(id=rule.id, symbol=rule.symbol)


def confirm_delete_alert_text(rule: AlertRule, digits: int) -> str:
    return _("Delete alert #{id}: {rule}?").format(id=rule.id, rule=_rule_text(rule, digits))


def alert_deleted_text(alert_id: int) -> str:
    return _("🗑 Alert #{id} deleted.").format(id=alert_id)


def watchlist_text(rows: Sequence[tuple[str, str, float]], limit: int, page_note: str = "") -> str:
    """``rows``: (symbol, direction buy/sell/flat, confidence 0..1)."""
    lines = [_("<b>👀 Watchlist</b> · agents' consensus (H1)")]
    if not rows:
        lines.append(_("Your watchlist is empty. Add symbols with /signals."))
    for symbol, direction, confidence in rows:
        lines.append(
            f"{_DIRECTION_ICON.get(direction, '⚪')} {symbol}: {direction_name(direction)} · {confidence * 100:.0f}%"
        )
    lines.append(ngettext("Up to {limit} symbol on your plan.", "Up to {limit} symbols on your plan.", limit).format(
        limit=limit))
    return "\n".join(lines)


def ai_used_up_text(limit: int, renews_at: datetime, tz: str) -> str:
    """A consensus panel once the day's AI analyses are used up (each refresh of it costs one)."""
    return ngettext("🔒 You've used your {limit} AI analysis for today; the agents' consensus renews at {time} your "
                    "time (midnight UTC). /premium shows plans with more.",
                    "🔒 You've used all {limit} AI analyses for today; the agents' consensus renews at {time} your "
                    "time (midnight UTC). /premium shows plans with more.", limit).format(
        limit=limit, time=renews_at.astimezone(_zone(tz)).strftime("%H:%M"))  # fmt: skip


def refresh_hint_text() -> str:
    return _("Press 🔄 Refresh for the latest consensus.")


def unavailable_text() -> str:
    return _("The market data is not available right now; try 🔄 Refresh in a moment.")


def agents_text(rows: Sequence[tuple[str, float, float]], symbol: str | None) -> str:
    """``rows``: (agent name, weight, hit rate 0..1) for ``symbol``."""
    lines = [_("<b>🤖 Agents</b>") + (f" · {symbol} H1" if symbol else "")]
    if not rows:
        lines.append(_("No agent data yet: put a symbol on your watchlist with /signals."))
    for name, weight, hit in rows:
        lines.append(_("{agent}: weight {weight} · hit rate {hit}").format(agent=name, weight=f"{weight:.2f}",
                                                                            hit=f"{hit * 100:.0f}%"))  # fmt: skip
    return "\n".join(lines)


_DIRECTION_ICON = {"buy": "🟢", "sell": "🔴", "flat": "⚪"}
DIRECTION_NAMES = {"buy": N_("buy"), "sell": N_("sell"), "flat": N_("no clear direction")}


def direction_name(direction: str) -> str:
    return _(DIRECTION_NAMES.get(direction, direction))


def settings_text(user: User, profile: TradingProfile, now: datetime) -> str:
    local = now.astimezone(_zone(user.timezone)).strftime("%H:%M")
    lines = [
        _("<b>⚙️ Settings</b>"),
        _("Language: {language}").format(language=LANGUAGE_NAMES[user.locale]),
        _("Time zone: {zone} (now {time})").format(zone=user.timezone, time=local),
        _("Account in use: {kind}").format(kind=kind_name(profile.active)),
        _("Kill switch: {state}").format(state=on_off(profile.kill_switch)),
        "",
        _("<b>Notifications</b>"),
    ]
    lines += [f"• {_(NOTIFY_NAMES[kind])}: {on_off(user.wants(kind))}" for kind in Notify]
    lines += ["", _("Language and time zone: /config · limits and live account: /trading")]
    return "\n".join(lines)


def notify_button(user: User, kind: Notify) -> str:
    return f"{'✅' if user.wants(kind) else '❌'} {_(NOTIFY_NAMES[kind])}"


def kill_switch_button(profile: TradingProfile) -> str:
    return _("🛑 Kill switch: {state}").format(state=on_off(profile.kill_switch))


def locked_text(tier_code: str | None) -> str:
    lines = [
        _("<b>🔒 More panels with an upgrade</b>"),
        _("• Watchlist: the agents' consensus for every symbol you watch"),
        _("• Agents: each agent's weight and hit rate"),
        _("• The web dashboard: equity, drawdown and P/L by symbol as charts"),
    ]
    if tier_code:
        lines += ["", _("{feature} come with the {tier} plan: see /premium.").format(
            feature=feature_name(Feature.DASHBOARDS), tier=tier_name(tier_code))]  # fmt: skip
    return "\n".join(lines)


def stale_text() -> str:
    return _("This dashboard has expired (the bot was restarted or it was closed). Open a fresh one with /analytics.")


def dashboard_closed_text() -> str:
    return _("Dashboard closed. /analytics opens it again.")


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")


def _clock(now: datetime, tz: str) -> str:
    return now.astimezone(_zone(tz)).strftime("%H:%M:%S")
