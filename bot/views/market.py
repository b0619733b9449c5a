"""/price, /chart, /alerts and fired-alert messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from aiogram import html
from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.callbacks import CallbackInt
from bot.views import View
from bot.views.common import Button, keyboard, quota_name, simulated_chart_label, simulated_prices
from domain.alerts.models import AlertFired, AlertKind, AlertRule, AlertStatus, Direction
from domain.tiers import Quota
from domain.trading.market import Quote


class ChartCB(CallbackData, prefix="ch"):
    symbol: str
    tf: str = "H1"


class AlertCB(CallbackData, prefix="al"):
    action: str  # list, new, pause, resume, del
    id: CallbackInt = 0


def _fmt(value: float, digits: int) -> str:
    return f"{value:.{digits}f}"


def price_view(quotes: list[Quote], unknown: Sequence[tuple[str, str]] = (), skipped: int = 0) -> View:
    """One answer for the whole request: the quotes, then what was not understood (``(symbol, suggestions)``)
    and how many more words were not looked up."""
    blocks = []
    for q in quotes:
        lines = [f"<b>{q.symbol}</b> · {html.quote(q.description)}"]
        lines.append(
            _("Bid {bid} · Ask {ask} · Spread {spread} pt").format(
                bid=_fmt(q.bid, q.digits), ask=_fmt(q.ask, q.digits), spread=q.spread_points
            )
        )
        if q.change is not None and q.change_pct is not None and q.day_low is not None and q.day_high is not None:
            arrow = "🟢" if q.change >= 0 else "🔴"
            lines.append(
                _("{arrow} Today {change} ({pct}%) · Range {low} – {high}").format(
                    arrow=arrow,
                    change=f"{q.change:+.{q.digits}f}",
                    pct=f"{q.change_pct:+.2f}",
                    low=_fmt(q.day_low, q.digits),
                    high=_fmt(q.day_high, q.digits),
                )  # fmt: skip
            )
        when = datetime.fromtimestamp(q.time_msc / 1000, UTC).strftime("%H:%M:%S")
        lines.append(_("Last tick {time} UTC").format(time=when))
        blocks.append("\n".join(lines))
    notes = []
    if unknown:
        items = [
            _("{symbol} (did you mean {suggestions}?)").format(symbol=html.quote(s), suggestions=html.quote(hint))
            if hint else html.quote(s)
            for s, hint in unknown
        ]  # fmt: skip
        notes.append(_("❓ Not understood: {items}").format(items=", ".join(items)))
    if skipped:
        notes.append(ngettext(
            "I look up at most {limit} symbols at a time; {n} more word was not looked up.",
            "I look up at most {limit} symbols at a time; {n} more words were not looked up.",
            skipped,
        ).format(limit=MAX_PRICE_SYMBOLS, n=skipped))  # fmt: skip
    if notes:
        blocks.append("\n".join(notes))
    if any(q.simulated for q in quotes):
        blocks.append(simulated_prices())
    buttons: list[Button] = [(_("📈 Chart {symbol}").format(symbol=q.symbol), ChartCB(symbol=q.symbol)) for q in quotes]
    return "\n\n".join(blocks), keyboard(buttons[:6]) if buttons else None


MAX_PRICE_SYMBOLS = 6  # quotes in one /price answer


def price_usage() -> View:
    return _("Send symbols after the command, for example: <code>/price EURUSD XAUUSD</code>"), None


def chart_usage() -> View:
    return _("Send a symbol and optionally a timeframe (M1 M5 M15 H1 H4 D1): <code>/chart EURUSD H1</code>"), None


def chart_caption(symbol: str, tf: str, levels: int, simulated: bool = False) -> str:
    text = _("{symbol} · {tf} candles").format(symbol=symbol, tf=tf)
    if levels:
        text += "\n" + ngettext("{n} dashed line: your alert level", "{n} dashed lines: your alert levels", levels).format(
            n=levels)  # fmt: skip
    if simulated:
        text += "\n" + simulated_prices()
    return text


def chart_mark() -> str:
    """The label drawn into a chart image of simulated bars (the hub draws it only on simulated data)."""
    return simulated_chart_label()


def chart_keyboard(symbol: str, tf: str) -> View:
    buttons: list[Button] = [
        (("• " if t == tf else "") + t, ChartCB(symbol=symbol, tf=t)) for t in ("M5", "M15", "H1", "H4", "D1")
    ]
    return "", keyboard(buttons, 5)


def _rule_text(rule: AlertRule, digits: int) -> str:
    if rule.kind is AlertKind.ABOVE:
        text = _("{symbol} rises to {level}").format(symbol=rule.symbol, level=_fmt(rule.threshold, digits))
    elif rule.kind is AlertKind.BELOW:
        text = _("{symbol} falls to {level}").format(symbol=rule.symbol, level=_fmt(rule.threshold, digits))
    elif rule.kind is AlertKind.CROSS:
        text = _("{symbol} crosses {level}").format(symbol=rule.symbol, level=_fmt(rule.threshold, digits))
    else:
        text = _("{symbol} moves {pct}% within {minutes} min").format(
            symbol=rule.symbol, pct=f"{rule.pct:g}", minutes=max(rule.window_s // 60, 1)
        )
    if rule.repeat:
        text += " " + _("(repeats, every {minutes} min)").format(minutes=max(rule.cooldown_s // 60, 1))
    return text


def alerts_view(rules: list[AlertRule], digits: dict[str, int], limit: int, simulated: bool = False) -> View:
    lines = [_("<b>🔔 Price alerts</b>")]
    if not rules:
        lines.append(_("You have no alerts yet."))
    for r in rules:
        mark = "⏸" if r.status is AlertStatus.PAUSED else "•"
        lines.append(f"{mark} #{r.id} {_rule_text(r, digits.get(r.symbol, 5))}")
    if simulated:
        lines.append(_("🧪 Alerts watch simulated prices from the built-in simulator, not market quotes."))
    left = max(limit - len(rules), 0)
    lines += ["", _("Used {used} of {limit} {quota}; {left} left.").format(
        used=len(rules), limit=limit, quota=quota_name(Quota.ALERTS), left=left)]  # fmt: skip
    lines.append(
        _("Add one: <code>/alerts add EURUSD &gt; 1.1050</code>, <code>&lt; 1.08</code>, "
          "<code>cross 1.09</code> or <code>move 1% 60m</code>; add <code>every 30m</code> to repeat.")
    )  # fmt: skip
    buttons: list[Button] = [(_("➕ New alert"), AlertCB(action="new"))] if left else []
    for r in rules[:20]:
        if r.status is AlertStatus.PAUSED:
            buttons.append((_("▶️ Resume #{id}").format(id=r.id), AlertCB(action="resume", id=r.id)))
        else:
            buttons.append((_("⏸ Pause #{id}").format(id=r.id), AlertCB(action="pause", id=r.id)))
        buttons.append((_("🗑 Delete #{id}").format(id=r.id), AlertCB(action="del", id=r.id)))
    return "\n".join(lines), keyboard(buttons, (1, 2)) if buttons else None


def alert_prompt() -> str:
    return _(
        "Send the alert: symbol, condition and level, e.g. <code>EURUSD &gt; 1.1050</code>, "
        "<code>XAUUSD cross 2400</code> or <code>BTCUSD move 2% 60m</code>. /cancel to stop."
    )


def alert_added_view(rule: AlertRule, digits: int, used: int, limit: int) -> View:
    text = _("✅ Alert #{id} set: {rule}.").format(id=rule.id, rule=_rule_text(rule, digits))
    text += "\n" + ngettext("{left} of {limit} alert left.", "{left} of {limit} alerts left.", limit).format(
        left=max(limit - used, 0), limit=limit)  # fmt: skip
    return text, keyboard([(_("🔔 My alerts"), AlertCB(action="list")), (_("📈 Chart"), ChartCB(symbol=rule.symbol))])


def alert_deleted_view(rule: AlertRule) -> str:
    return _("Alert #{id} deleted.").format(id=rule.id)


def alert_fired_view(event: AlertFired, digits: int, timezone: str, simulated: bool = False) -> View:
    rule = event.rule
    when = datetime.fromtimestamp(event.time_msc / 1000, UTC).astimezone(ZoneInfo(timezone))
    arrow = "📈" if event.direction is Direction.UP else "📉"
    text = "\n".join(
        [
            _("{arrow} <b>Alert #{id}: {symbol}</b>").format(arrow=arrow, id=rule.id, symbol=rule.symbol),
            _rule_text(rule, digits),
            _("Price {price} at {time}").format(price=_fmt(event.price, digits), time=when.strftime("%Y-%m-%d %H:%M")),
            *([simulated_prices()] if simulated else []),
        ]
    )
    return text, keyboard([(_("📈 Chart"), ChartCB(symbol=rule.symbol)), (_("🔔 My alerts"), AlertCB(action="list"))])


def symbol_suggestions(symbol: str, suggestions: str) -> str:
    if suggestions:
        return _("I don't know the symbol {symbol}. Did you mean {suggestions}?").format(
            symbol=html.quote(symbol), suggestions=suggestions
        )
    return _("I don't know the symbol {symbol}.").format(symbol=html.quote(symbol))
