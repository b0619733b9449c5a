"""/positions, /balance, /trade, /close, /history, /risk, /trading."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from aiogram import html
from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.callbacks import CallbackInt
from bot.i18n import N_
from bot.notify import Notifier
from bot.views import View
from bot.views.common import Button, keyboard, on_off, simulated_account, tier_name
from bot.views.plans import PlansCB
from domain.agents.consensus import ConsensusDecision
from domain.agents.votes import Direction
from domain.market.models import Account, Deal, Retcode, Side
from domain.trading.autotrade import AutoPanel, AutoReport, Holdings, Outcome, Pending, Stance, stance
from domain.trading.models import (
    AccountKind,
    ClosePreview,
    DayPnl,
    Execution,
    LinkedAccount,
    OrderKind,
    OrderStatus,
    Preview,
    RiskLimits,
    Settlement,
    TradingProfile,
)

if TYPE_CHECKING:
    from domain.db.uow import UnitOfWork


class OrderCB(CallbackData, prefix="tr"):
    action: str  # ok, no
    id: str


class TradeFlowCB(CallbackData, prefix="tf"):
    step: str  # side, vol, go
    symbol: str
    side: str = ""
    volume: str = ""


FLOW_SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "US500", "BTCUSD")
FLOW_VOLUMES = ("0.01", "0.05", "0.1", "0.5", "1")


class PosCB(CallbackData, prefix="ps"):
    action: str  # list, close, sltp
    ticket: CallbackInt = 0


class HistCB(CallbackData, prefix="hi"):
    page: CallbackInt = 0
    days: CallbackInt = 7
    symbol: str = ""


class RiskCB(CallbackData, prefix="rk"):
    field: str = ""


class TradingCB(CallbackData, prefix="tg"):
    action: str  # home, demo, live, kill, auto, link, unlink
    value: CallbackInt = 0


class AutoCB(CallbackData, prefix="at"):
    """The auto-trading panel. ``uid`` is the owner: a button pressed by anyone else changes nothing."""

    action: str  # home, on, off, thr, risk, tf, sym, demo, live (ask), confirm (value: the one-time code)
    uid: CallbackInt
    value: str = ""


AUTO_THRESHOLDS = ("55", "60", "65", "70", "80")
AUTO_RISKS = ("0.5", "1", "2")


RETCODES = {
    Retcode.DONE: N_("done"),
    Retcode.DONE_PARTIAL: N_("partly filled"),
    Retcode.PLACED: N_("placed"),
    Retcode.REQUOTE: N_("the price changed (requote); try again"),
    Retcode.REJECT: N_("rejected by the broker"),
    Retcode.CANCEL: N_("cancelled by the broker"),
    Retcode.ERROR: N_("the broker could not process it"),
    Retcode.TIMEOUT: N_("the broker did not answer in time"),
    Retcode.INVALID: N_("the request is invalid"),
    Retcode.INVALID_VOLUME: N_("the volume is not allowed for this symbol"),
    Retcode.INVALID_PRICE: N_("the price is invalid"),
    Retcode.INVALID_STOPS: N_("stop loss or take profit is too close to the price or on the wrong side"),
    Retcode.TRADE_DISABLED: N_("trading is disabled for this symbol"),
    Retcode.MARKET_CLOSED: N_("the market is closed now"),
    Retcode.NO_MONEY: N_("not enough free margin"),
    Retcode.PRICE_CHANGED: N_("the price changed; try again"),
    Retcode.PRICE_OFF: N_("no quotes right now"),
    Retcode.TOO_MANY_REQUESTS: N_("too many requests; wait a moment"),
    Retcode.NO_CHANGES: N_("nothing to change"),
    Retcode.LOCKED: N_("the position is locked"),
    Retcode.FROZEN: N_("the position is frozen (too close to the market)"),
    Retcode.CONNECTION: N_("no connection to the trade server"),
    Retcode.LIMIT_POSITIONS: N_("the broker's position limit is reached"),
    Retcode.LIMIT_VOLUME: N_("the broker's volume limit is reached"),
    Retcode.POSITION_CLOSED: N_("the position is already closed"),
}

RULES = {
    "kill_switch": N_("the kill switch is on: new orders are blocked (/trading)"),
    "max_volume": N_("volume {value} is over your limit of {limit} lots per trade"),
    "max_positions": N_("open positions: {value}; your limit is {limit}"),
    "daily_loss": N_("today's loss is {value}% of equity; your limit is {limit}%"),
    "risk_per_trade": N_("this trade risks {value}% of equity; your limit is {limit}%"),
}

STATUS_NAMES = {
    OrderStatus.REJECTED: N_("rejected by the broker"),
    OrderStatus.BLOCKED: N_("blocked by your risk limits"),
    OrderStatus.EXPIRED: N_("expired"),
    OrderStatus.FAILED: N_("not sent: the trading server failed"),
}

LIMIT_NAMES = {
    "max_volume": N_("Max volume per trade (lots)"),
    "max_positions": N_("Max open positions"),
    "max_daily_loss_pct": N_("Max daily loss (% of equity)"),
    "risk_per_trade_pct": N_("Risk per trade (% of equity)"),
}


def kind_name(kind: AccountKind) -> str:
    return _("demo") if kind is AccountKind.DEMO else _("live")


def retcode_text(code: int) -> str:
    try:
        msgid = RETCODES.get(Retcode(code))
    except ValueError:
        msgid = None
    return _(msgid) if msgid else _("broker code {code}").format(code=code)


def _sim(kind: AccountKind, simulated: bool) -> list[str]:
    """The "simulated" line of an account that trades simulated prices (the domain's ``simulated`` flag)."""
    return [simulated_account(kind is AccountKind.DEMO)] if simulated else []


def _money(value: float, currency: str) -> str:
    return f"{value:,.2f} {currency}"


def _px(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def trade_usage() -> View:
    return (
        _("Place a market order: <code>/trade buy EURUSD 0.10 sl=1.0800 tp=1.1200</code>\n"
          "Side buy or sell, then symbol and volume in lots; sl and tp are optional. "
          "You confirm after a preview.")
    ), None  # fmt: skip


def trade_start_view() -> View:
    text, _none = trade_usage()
    buttons: list[Button] = [(sym, TradeFlowCB(step="side", symbol=sym)) for sym in FLOW_SYMBOLS]
    return text + "\n\n" + _("Or pick a symbol:"), keyboard(buttons, 3)


def trade_side_view(symbol: str) -> View:
    buttons: list[Button] = [
        (_("🟢 Buy"), TradeFlowCB(step="vol", symbol=symbol, side="buy")),
        (_("🔴 Sell"), TradeFlowCB(step="vol", symbol=symbol, side="sell")),
    ]
    return _("<b>{symbol}</b>: buy or sell?").format(symbol=symbol), keyboard(buttons)


def trade_volume_view(symbol: str, side: str) -> View:
    buttons: list[Button] = [(v, TradeFlowCB(step="go", symbol=symbol, side=side, volume=v)) for v in FLOW_VOLUMES]
    side_text = _("BUY") if side == "buy" else _("SELL")
    return _("<b>{side} {symbol}</b>: how many lots? (Stops can be set after opening, in /positions.)").format(
        side=side_text, symbol=symbol
    ), keyboard(buttons, 5)


def preview_view(p: Preview) -> View:
    side = _("BUY") if p.side.value == "buy" else _("SELL")
    lines = [
        _("<b>Order preview</b> · {account} account").format(account=kind_name(p.order.account_kind)),
        _("{side} {volume} lots {symbol} at about {price}").format(
            side=side, volume=f"{p.volume:g}", symbol=p.symbol, price=_px(p.price, p.digits)
        ),
        *_sim(p.order.account_kind, p.simulated),
    ]
    if p.volume != p.requested_volume:
        lines.append(_("Volume rounded to the symbol's step: {requested} → {volume}").format(
            requested=f"{p.requested_volume:g}", volume=f"{p.volume:g}"))  # fmt: skip
    lines.append(_("SL {sl} · TP {tp}").format(sl=_px(p.sl, p.digits), tp=_px(p.tp, p.digits)))
    lines.append(_("Margin {margin} · free after {free}").format(
        margin=_money(p.margin, p.currency), free=_money(p.margin_free, p.currency)))  # fmt: skip
    if p.risk_money is not None and p.risk_pct is not None:
        lines.append(_("Risk at stop loss: {money} ({pct}% of equity)").format(
            money=_money(p.risk_money, p.currency), pct=f"{p.risk_pct:.2f}"))  # fmt: skip
    else:
        lines.append(_("⚠️ No stop loss: the possible loss is not limited."))
    if not p.check_ok:
        lines.append(_("❌ The broker's check fails: {reason}").format(reason=retcode_text(p.check_retcode)))
        return "\n".join(lines), keyboard([(_("✖️ Cancel"), OrderCB(action="no", id=p.order.id))])
    lines.append(_("Confirm within 5 minutes."))
    return "\n".join(lines), keyboard(
        [(_("✅ Confirm"), OrderCB(action="ok", id=p.order.id)), (_("✖️ Cancel"), OrderCB(action="no", id=p.order.id))]
    )


def close_preview_view(p: ClosePreview) -> View:
    lines = [_("<b>Close positions?</b>")]
    for ticket, symbol, side, volume, close_volume, profit in p.positions:
        part = f"{close_volume:g}/{volume:g}" if close_volume != volume else f"{volume:g}"
        lines.append(f"#{ticket} {symbol} {side.upper()} {part} · {_money(profit, p.currency)}")
    lines += _sim(p.order.account_kind, p.simulated)
    return "\n".join(lines), keyboard(
        [(_("✅ Close"), OrderCB(action="ok", id=p.order.id)), (_("✖️ Cancel"), OrderCB(action="no", id=p.order.id))]
    )


def close_usage() -> View:
    return (
        _("Close a position: <code>/close 123456</code> (ticket), <code>/close EURUSD</code> (symbol) or "
          "<code>/close all</code>; partial: <code>/close 123456 0.05</code>.")
    ), None  # fmt: skip


def execution_view(e: Execution) -> View:
    if e.breach is not None:
        reason = _(RULES[e.breach.rule]).format(value=f"{e.breach.value:g}", limit=f"{e.breach.limit:g}")
        return _("🛑 Order blocked by your risk limits: {reason}.").format(reason=reason), keyboard(
            [(_("🛡 Risk limits"), RiskCB()), (_("⚙️ Trading"), TradingCB(action="home"))]
        )
    if e.repeated:
        if e.order.status is OrderStatus.CANCELLED:
            return _("This order was cancelled."), None
        if e.order.status in (OrderStatus.SENDING,):
            return _("This order is being sent, or its outcome is being checked with the broker; it is never sent "
                     "twice. You'll get a message as soon as its outcome is known."), None  # fmt: skip
        if e.order.status is OrderStatus.DONE:
            return _("This order was already placed (it is never sent twice)."), None
        status = STATUS_NAMES.get(e.order.status)
        return _("This order is closed: {status}.").format(status=_(status) if status else e.order.status.value), None
    codes = ", ".join(f"{retcode_text(c)} ({c})" for c in e.retcodes)
    what = _("Position closed") if e.order.kind is OrderKind.CLOSE else _("Order placed")
    if e.order.kind is OrderKind.MODIFY:
        what = _("Stops updated")
    sim = "".join("\n" + line for line in _sim(e.order.account_kind, e.simulated))
    if e.ok:
        extra = _(" at {price}").format(price=e.price) if e.price else ""
        return f"✅ {what}{extra}. " + _("Broker: {codes}").format(codes=codes) + sim, keyboard(
            [(_("📋 Positions"), PosCB(action="list"))]
        )
    return "❌ " + _("Not executed. Broker: {codes}").format(codes=codes) + sim, None


def cancelled_view() -> View:
    return _("Cancelled. Nothing was sent."), None


def balance_view(account: LinkedAccount, info: Account) -> View:
    level = f"{info.margin_level:.1f}%" if info.margin_level else "—"
    lines = [
        _("<b>💰 Balance</b> · {kind} account {login}").format(kind=kind_name(account.kind), login=info.login),
        *_sim(account.kind, account.simulated),
        _("Balance: {v}").format(v=_money(info.balance, info.currency)),
        _("Equity: {v}").format(v=_money(info.equity, info.currency)),
        _("Margin: {v}").format(v=_money(info.margin, info.currency)),
        _("Free margin: {v}").format(v=_money(info.margin_free, info.currency)),
        _("Margin level: {v}").format(v=level),
        _("Leverage 1:{lev} · currency {cur} · server {server}").format(
            lev=info.leverage, cur=html.quote(info.currency), server=html.quote(info.server)),
    ]  # fmt: skip
    return "\n".join(lines), keyboard([(_("📋 Positions"), PosCB(action="list")), (_("⚙️ Trading"),
                                       TradingCB(action="home"))])  # fmt: skip


def positions_view(h: Holdings) -> View:
    account, info, positions, digits = h.account, h.info, h.positions, h.digits
    lines = [_("<b>📋 Open positions</b> · {kind} account").format(kind=kind_name(account.kind)),
             *_sim(account.kind, account.simulated)]  # fmt: skip
    if not positions:
        lines.append(_("No open positions. Open one with /trade."))
        return "\n".join(lines), None
    buttons: list[Button] = []
    total = 0.0
    for p in positions[:30]:
        d = digits.get(p.symbol, 5)
        icon = "🟢" if p.profit >= 0 else "🔴"
        lines.append(
            _("{icon} #{ticket} {symbol} {side} {volume} @ {open} → {now} · P/L {pl}").format(
                icon=icon,
                ticket=p.ticket,
                symbol=p.symbol,
                side=p.side.value.upper(),
                volume=f"{p.volume:g}",
                open=_px(p.price_open, d),
                now=_px(p.price_current, d),
                pl=_money(p.profit, info.currency),
            )  # fmt: skip
        )
        lines.append("   " + _("SL {sl} · TP {tp}").format(sl=_px(p.sl, d), tp=_px(p.tp, d)))
        if p.symbol in h.opinions:
            lines.append("   " + holding_line(p.side, h.opinions[p.symbol], h.timeframe.value))
        total += p.profit
        buttons += [
            (_("✖️ Close #{ticket}").format(ticket=p.ticket), PosCB(action="close", ticket=p.ticket)),
            (_("✏️ SL/TP #{ticket}").format(ticket=p.ticket), PosCB(action="sltp", ticket=p.ticket)),
        ]
    lines.append(_("Floating P/L: {v}").format(v=_money(total, info.currency)))
    buttons.append((_("🔄 Refresh"), PosCB(action="list")))
    return "\n".join(lines), keyboard(buttons)


def sltp_prompt(ticket: int) -> str:
    return _("Send new levels for #{ticket}, e.g. <code>sl=1.0800 tp=1.1200</code> (<code>sl=0</code> removes "
             "it), or /cancel.").format(ticket=ticket)  # fmt: skip


def history_view(
    account: LinkedAccount, info: Account, deals: list[Deal], page: int, days: int, symbol: str, tz: str,
    per_page: int = 10,
) -> View:  # fmt: skip
    pages = max((len(deals) + per_page - 1) // per_page, 1)
    page = min(max(page, 0), pages - 1)
    head = ngettext("<b>📜 Closed deals</b> · {kind} · last {days} day", "<b>📜 Closed deals</b> · {kind} · last {days} days",
                    days).format(kind=kind_name(account.kind), days=days)  # fmt: skip
    if symbol:
        head += f" · {symbol}"
    lines = [head, *_sim(account.kind, account.simulated)]
    if not deals:
        lines.append(_("No closed deals in this period."))
    zone = ZoneInfo(tz)
    for d in deals[page * per_page : (page + 1) * per_page]:
        when = datetime.fromtimestamp(d.time, UTC).astimezone(zone).strftime("%m-%d %H:%M")
        pl = d.profit + d.commission + d.swap
        lines.append(f"{when} #{d.position_id} {d.symbol} {d.side.value.upper()} {d.volume:g} @ {d.price:g} · "
                     f"{_money(pl, info.currency)}")  # fmt: skip
    total = sum(d.profit + d.commission + d.swap for d in deals)
    wins = sum(1 for d in deals if d.profit > 0)
    lines += ["", ngettext("Total: {total} · {n} deal, in profit: {wins}", "Total: {total} · {n} deals, in profit: {wins}",
                           len(deals)).format(total=_money(total, info.currency), n=len(deals), wins=wins)]  # fmt: skip
    if pages > 1:
        lines.append(_("Page {page} of {pages}").format(page=page + 1, pages=pages))
    buttons: list[Button] = []
    if page > 0:
        buttons.append(("«", HistCB(page=page - 1, days=days, symbol=symbol)))
    if page < pages - 1:
        buttons.append(("»", HistCB(page=page + 1, days=days, symbol=symbol)))
    buttons += [(("• " if n == days else "") + _("{n} d").format(n=n), HistCB(days=n, symbol=symbol))
                for n in (1, 7, 30)]  # fmt: skip
    return "\n".join(lines), keyboard(buttons, (len(buttons) - 3, 3) if len(buttons) > 3 else 3)


def history_usage() -> str:
    return _("Filters: <code>/history EURUSD 30</code> (symbol and/or days, up to 365).")


def risk_view(profile: TradingProfile) -> View:
    lim: RiskLimits = profile.limits
    lines = [_("<b>🛡 Risk limits</b> (checked before every order)")]
    for name in RiskLimits.FIELDS:
        lines.append(f"• {_(LIMIT_NAMES[name])}: <b>{getattr(lim, name):g}</b>")
    lines += ["", _("Change one: <code>/risk max_volume 1</code>, <code>/risk max_positions 5</code>, "
                    "<code>/risk max_daily_loss_pct 3</code>, <code>/risk risk_per_trade_pct 1</code>")]  # fmt: skip
    return "\n".join(lines), keyboard([(_("⚙️ Trading"), TradingCB(action="home"))])


def trading_view(
    profile: TradingProfile, account: LinkedAccount, info: Account, pnl: DayPnl, live: LinkedAccount | None
) -> View:  # fmt: skip
    cur = info.currency
    lines = [
        _("<b>⚙️ Trading</b>"),
        _("Account in use: {kind} {login} ({server})").format(kind=kind_name(account.kind), login=account.login,
                                                              server=html.quote(account.server)),  # fmt: skip
        *_sim(account.kind, account.simulated),
        _("Auto-trading: {state}").format(state=on_off(profile.auto_trading)),
        _("Kill switch: {state}").format(state=_("ON, new orders blocked") if profile.kill_switch else _("off")),
        _("Today's P/L: {pnl} (realized {r}, floating {f})").format(
            pnl=_money(pnl.total, cur), r=_money(pnl.realized, cur), f=_money(pnl.floating, cur)),
        _("Daily loss: {used}% of {limit}% allowed").format(
            used=f"{pnl.loss_pct:.2f}", limit=f"{profile.limits.max_daily_loss_pct:g}"),
    ]  # fmt: skip
    if live is not None:
        lines.append(_("Linked live account: {login} on {server}").format(login=live.login, server=html.quote(live.server)))
    buttons: list[Button] = [
        (_("🟢 Kill switch off") if profile.kill_switch else _("🛑 Kill switch"),
         TradingCB(action="kill", value=0 if profile.kill_switch else 1)),
        ((_("🤖 Auto-trading: on") if profile.auto_trading else _("🤖 Auto-trading: off")),
         TradingCB(action="auto", value=0 if profile.auto_trading else 1)),
    ]  # fmt: skip
    if account.kind is AccountKind.LIVE:
        buttons.append((_("🧪 Use demo account"), TradingCB(action="demo")))
    elif live is not None:
        buttons.append((_("💼 Use live account"), TradingCB(action="live")))
    buttons.append((_("🔗 Link live MT5 account") if live is None else _("🔗 Re-link live account"),
                    TradingCB(action="link")))  # fmt: skip
    if live is not None:
        buttons.append((_("✂️ Unlink live account"), TradingCB(action="unlink")))
    buttons.append((_("🛡 Risk limits"), RiskCB()))
    buttons.append((_("🤖 Auto-trading settings"), AutoCB(action="home", uid=profile.user_id)))
    return "\n".join(lines), keyboard(buttons)


def link_login_prompt() -> str:
    return _("Linking a live MT5 account. Send your <b>login</b> (account number), or /cancel.")


def link_server_prompt() -> str:
    return _("Now the <b>server</b> name, as shown in MetaTrader (e.g. <code>Broker-Live</code>).")


def link_password_prompt() -> str:
    return _("Now the <b>password</b>. I delete your message at once and store the password encrypted; "
             "it is never shown again.")  # fmt: skip


def linked_view(account: LinkedAccount) -> View:
    return _("✅ Live account {login} on {server} linked. Switch to it in /trading when you are ready.").format(
        login=account.login, server=html.quote(account.server)  # typed by the user at the link step
    ), keyboard([(_("⚙️ Trading"), TradingCB(action="home"))])


def link_failed_text() -> str:
    return _("The broker refused this login, server or password. Nothing was stored. Try again from /trading.")


def unlinked_text() -> str:
    return _("Live account unlinked; the stored password was deleted. You are on the demo account.")


def live_locked_text(tier: str) -> str:
    return _("Live MT5 accounts need the {tier} plan or higher. /premium shows the plans; the demo account stays "
             "free.").format(tier=tier_name(tier))  # fmt: skip


# ---- auto-trading ---------------------------------------------------------------------------------

REASONS = {
    "consensus.no_quorum": N_("too few agents have a view"),
    "consensus.no_track_record": N_("the agents have no track record here yet"),
    "consensus.tie": N_("the agents are evenly split"),
    "consensus.disagreement": N_("the agents disagree"),
    "consensus.vetoed": N_("vetoed by the Risk agent"),
}

RISK_REASONS = {
    "risk.warmup": N_("the Risk agent lacks the history to judge the volatility"),
    "risk.extreme_volatility": N_("volatility is extreme: the Risk agent vetoed the trade"),
    "risk.budget_over_cap": N_("the risk per trade is over the Risk agent's cap"),
    "risk.budget_too_small": N_("your risk budget cannot buy the minimum volume at this stop distance"),
    "risk.budget_invalid": N_("the account has no equity to size a trade"),
}


def _side(side: Side | Direction | str) -> str:
    value = side if isinstance(side, str) else side.value
    return _("BUY") if value == "buy" else _("SELL")


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def consensus_text(decision: ConsensusDecision | None) -> str:
    """“BUY · confidence 64% · agreement 80%”, or why there is no consensus."""
    if decision is None:
        return _("not available right now")
    if decision.direction is Direction.FLAT or decision.vetoed:
        reason = REASONS.get(decision.explanation_key)
        return _("no consensus ({reason})").format(reason=_(reason)) if reason else _("no consensus")
    icon = "🟢" if decision.direction is Direction.BUY else "🔴"
    return _("{icon} {side} · confidence {confidence} · agreement {agreement}").format(
        icon=icon, side=_side(decision.direction), confidence=_pct(decision.confidence),
        agreement=_pct(decision.agreement))  # fmt: skip


def holding_line(side: Side, decision: ConsensusDecision | None, tf: str) -> str:
    """A position's line: does the current consensus support holding it?"""
    view = stance(side, decision)
    if view is Stance.NONE:
        return _("🤖 AI consensus ({tf}): no consensus").format(tf=tf)
    word = _("supports holding") if view is Stance.SUPPORTS else _("against holding")
    assert decision is not None
    return _("🤖 AI consensus ({tf}): {side} {confidence} — {stance}").format(
        tf=tf, side=_side(decision.direction), confidence=_pct(decision.confidence), stance=word)  # fmt: skip


def _pending_line(p: Pending, threshold: float) -> str:
    line = f"{p.symbol}: {consensus_text(p.decision)}"
    d = p.decision
    if d is not None and d.direction is not Direction.FLAT and not d.vetoed:
        line += " — " + (_("✅ meets your threshold") if p.qualifies(threshold) else _("below your threshold"))
    return line


def auto_locked_text(tier: str) -> str:
    return _("Auto-trading needs the {tier} plan or higher. /premium shows the plans.").format(tier=tier_name(tier))


def autotrade_view(panel: AutoPanel, tz: str = "UTC") -> View:
    st, uid = panel.settings, panel.profile.user_id
    if not panel.allowed:
        lines = [
            _("<b>🤖 Auto-trading</b> · 🔒 {tier} plan").format(tier=tier_name(panel.needed_tier)),
            _("With the {tier} plan the bot trades for you: orders from AI consensus signals above the confidence "
              "you choose, sized by the Risk agent within your /risk limits, on the demo account (live only after "
              "a second confirmation). Every order is audited and reported in this chat.").format(
                tier=tier_name(panel.needed_tier)),
        ]  # fmt: skip
        if panel.profile.auto_trading:
            lines.append(_("It is still switched on but places nothing on your plan."))
            buttons: list[Button] = [(_("⏸ Turn off"), AutoCB(action="off", uid=uid))]
        else:
            buttons = []
        buttons += [(_("💎 Compare plans"), PlansCB()), (_("⚙️ Trading"), TradingCB(action="home"))]
        return "\n".join(lines), keyboard(buttons)
    if panel.account.value == "live" and panel.live is not None:
        where = _("live account {login} (confirmed)").format(login=panel.live.login)
    else:
        where = _("demo account")
    lines = [
        _("<b>🤖 Auto-trading</b> · {state}").format(state=on_off(panel.profile.auto_trading)),
        _("Orders from AI consensus signals above your threshold, sized by the Risk agent within your /risk "
          "limits. Each one is audited and reported here."),
        _("Orders go to: {where}").format(where=where),
        _("Timeframe {tf} · threshold {threshold} · risk per trade {risk}% of equity (at most {max}%)").format(
            tf=st.timeframe.value, threshold=_pct(st.threshold), risk=f"{st.risk_pct:g}",
            max=f"{panel.max_risk_pct:g}"),
        _("Symbols: {symbols}").format(symbols=", ".join(st.symbols) if st.symbols else "—"),
    ]  # fmt: skip
    if panel.profile.kill_switch:
        lines.append(_("🛑 The kill switch is on: no auto orders until you turn it off in /trading."))
    if panel.pending:
        lines += ["", _("<b>Consensus now ({tf})</b>").format(tf=st.timeframe.value)]
        lines += [_pending_line(p, st.threshold) for p in panel.pending]
    if panel.recent:
        lines += ["", _("<b>Latest auto orders</b>")]
        lines += [
            f"{datetime.fromtimestamp(r.bar_time, UTC).astimezone(ZoneInfo(tz)).strftime('%m-%d %H:%M')} {r.symbol} "
            f"{_side(r.direction)} — "
            f"{outcome_name(r.status)}"
            for r in panel.recent
        ]
    lines += ["", _("Other values: <code>/trading threshold 72</code> · <code>/trading risk 1.5</code> · "
                    "<code>/trading symbol GBPJPY</code> (adds or removes it)")]  # fmt: skip
    on = panel.profile.auto_trading
    buttons = [(_("⏸ Turn off") if on else _("▶️ Turn on"), AutoCB(action="off" if on else "on", uid=uid))]
    widths = [1]
    thresholds = [("• " if abs(float(v) / 100 - st.threshold) < 1e-6 else "") + f"{v}%" for v in AUTO_THRESHOLDS]
    buttons += [(label, AutoCB(action="thr", uid=uid, value=v)) for label, v in zip(thresholds, AUTO_THRESHOLDS)]
    widths.append(len(AUTO_THRESHOLDS))
    risks = [v for v in AUTO_RISKS if float(v) <= panel.max_risk_pct + 1e-9]
    buttons += [(("• " if abs(float(v) - st.risk_pct) < 1e-9 else "") + _("risk {v}%").format(v=v),
                 AutoCB(action="risk", uid=uid, value=v)) for v in risks]  # fmt: skip
    widths.append(len(risks))
    if len(panel.timeframes) > 1:
        buttons += [(("• " if tf is st.timeframe else "") + tf.value, AutoCB(action="tf", uid=uid, value=tf.value))
                    for tf in panel.timeframes]  # fmt: skip
        widths.append(len(panel.timeframes))
    symbols = list(dict.fromkeys((*st.symbols, *FLOW_SYMBOLS)))
    buttons += [(("✅ " if sym in st.symbols else "") + sym, AutoCB(action="sym", uid=uid, value=sym))
                for sym in symbols]  # fmt: skip
    widths += [3] * ((len(symbols) + 2) // 3)
    live = panel.account.value == "live"
    buttons += [(("• " if not live else "") + _("🧪 Demo"), AutoCB(action="demo", uid=uid)),
                (("• " if live else "") + _("💼 Live…"), AutoCB(action="live", uid=uid))]  # fmt: skip
    buttons += [(_("🔄 Refresh"), AutoCB(action="home", uid=uid)), (_("⚙️ Trading"), TradingCB(action="home"))]
    widths += [2, 2]
    return "\n".join(lines), keyboard(buttons, widths)


def autotrade_live_view(panel: AutoPanel, code: str) -> View:
    """The second confirmation for live auto-trading."""
    uid = panel.profile.user_id
    assert panel.live is not None
    text = "\n".join([
        _("⚠️ <b>Live auto-trading</b>"),
        _("Auto orders will go to your live account {login} on {server} whenever it is the account in use in "
          "/trading: real money, without asking you each time. Your /risk limits and the kill switch still "
          "apply.").format(login=panel.live.login, server=html.quote(panel.live.server)),
        _("Confirm a second time to allow it."),
    ])  # fmt: skip
    return text, keyboard([
        (_("✅ Yes, auto-trade on my live account"), AutoCB(action="confirm", uid=uid, value=code)),
        (_("✖️ Keep the demo account"), AutoCB(action="home", uid=uid)),
    ], 1)  # fmt: skip


OUTCOME_NAMES = {
    Outcome.PLACED: N_("placed"),
    Outcome.REJECTED: N_("rejected by the broker"),
    Outcome.BLOCKED: N_("blocked by your risk limits"),
    Outcome.RISK_VETO: N_("not sized by the Risk agent"),
    Outcome.OPPOSITE: N_("opposite position held"),
    Outcome.FAILED: N_("failed"),
    Outcome.KILLED: N_("stopped by the kill switch"),
}


def outcome_name(value: str) -> str:
    try:
        msgid = OUTCOME_NAMES.get(Outcome(value))
    except ValueError:
        msgid = None
    return _(msgid) if msgid else _("in progress")


def auto_report_view(r: AutoReport) -> View:
    """The chat report of one auto-trading decision."""
    when = datetime.fromtimestamp(r.bar_time, UTC).astimezone(ZoneInfo(r.timezone)).strftime("%Y-%m-%d %H:%M")
    why = _("Signal: AI consensus {side} on the {tf} bar of {when}, confidence {confidence}, agreement "
            "{agreement}.").format(side=_side(r.side), tf=r.timeframe.value, when=when,
                                   confidence=_pct(r.confidence), agreement=_pct(r.agreement))  # fmt: skip
    account = kind_name(r.account)
    if r.outcome is Outcome.PLACED:
        head = _("🤖 <b>Auto-trade placed</b> · {account} account").format(account=account)
        body = [
            _("{side} {volume} lots {symbol} at {price}").format(side=_side(r.side), volume=f"{r.volume:g}",
                                                                 symbol=r.symbol, price=_px(r.price, r.digits)),
            _("SL {sl} · TP {tp}").format(sl=_px(r.sl, r.digits), tp=_px(r.tp, r.digits)),
        ]  # fmt: skip
        if r.risk_pct is not None:
            body.append(_("Risk at stop loss: {pct}% of equity").format(pct=f"{r.risk_pct:.2f}"))
    elif r.outcome is Outcome.BLOCKED and r.breach is not None:
        reason = _(RULES[r.breach.rule]).format(value=f"{r.breach.value:g}", limit=f"{r.breach.limit:g}")
        head = _("🛑 <b>Auto-trade blocked</b> by your risk limits: {reason}.").format(reason=reason)
        body = [_("{side} {volume} lots {symbol} was not sent.").format(
            side=_side(r.side), volume=f"{r.volume:g}", symbol=r.symbol)]  # fmt: skip
    elif r.outcome is Outcome.RISK_VETO:
        reason = RISK_REASONS.get(r.reason)
        head = _("🛑 <b>Auto-trade skipped</b> on {symbol}: {reason}.").format(
            symbol=r.symbol, reason=_(reason) if reason else r.reason)  # fmt: skip
        body = [_("Nothing was sent.")]
    elif r.outcome is Outcome.REJECTED:
        codes = ", ".join(f"{retcode_text(c)} ({c})" for c in r.retcodes)
        head = _("❌ <b>Auto-trade rejected</b> by the broker: {codes}").format(codes=codes)
        body = [_("{side} {volume} lots {symbol} · {account} account").format(
            side=_side(r.side), volume=f"{r.volume:g}", symbol=r.symbol, account=account)]  # fmt: skip
    elif r.outcome is Outcome.OPPOSITE:
        head = _("↔️ <b>AI consensus turned {side}</b> on {symbol} while you hold {held} #{ticket}.").format(
            side=_side(r.side), symbol=r.symbol, held=_side(r.held or Side.BUY), ticket=r.ticket)  # fmt: skip
        body = [_("Auto-trading never hedges or reverses a position: nothing was sent. Close it in /positions if "
                  "you agree.")]  # fmt: skip
    elif r.reason == "TRD-UNKNOWN":
        head = _("⚠️ <b>Auto-trade on {symbol}</b>: the trading server did not answer in time; the order may "
                 "have been placed.").format(symbol=r.symbol)  # fmt: skip
        body = [_("We are checking with the broker and will tell you the outcome; until then no new order goes "
                  "to this account.")]  # fmt: skip
    elif r.reason in ("TRD-UNSETTLED", "TRD-BUSY"):
        head = _("⏸ <b>Auto-trade on {symbol} skipped</b>: another order on this account is still being sent or "
                 "checked with the broker.").format(symbol=r.symbol)  # fmt: skip
        body = [_("Nothing was sent.")]
    else:
        head = _("⚠️ <b>Auto-trade on {symbol} failed</b>: the trading server could not take it (code {code}). "
                 "Nothing was sent.").format(symbol=r.symbol, code=r.reason or "—")  # fmt: skip
        body = []
    return "\n".join([head, *body, *_sim(r.account, r.simulated), why]), keyboard([
        (_("📋 Positions"), PosCB(action="list")),
        (_("🤖 Auto-trading"), AutoCB(action="home", uid=r.user_id)),
        (_("🛑 Kill switch"), TradingCB(action="kill", value=1)),
    ], (2, 1))  # fmt: skip


class AutoTradeReporter:
    """Sends auto-trading reports through the app's notifier, rendered in the user's language."""

    def __init__(self, i18n: I18n, notifier: Callable[[], Notifier | None]) -> None:
        self._i18n = i18n
        self._notifier = notifier

    async def __call__(self, report: AutoReport) -> bool:
        notifier = self._notifier()
        if notifier is None:
            return False
        with self._i18n.context(), self._i18n.use_locale(report.locale):
            text, markup = auto_report_view(report)
        return await notifier.send(report.user_id, text, markup, key=report.key)


def settlement_view(s: Settlement) -> View:
    """The notice of an order whose answer was lost, once the terminal's history told its real outcome."""
    o = s.order
    ref = o.id[:8]
    account = kind_name(o.account_kind)
    if o.status is OrderStatus.DONE:
        if o.kind is OrderKind.OPEN:
            p = o.params
            head = _("✅ <b>Order {ref} was placed.</b> The broker's answer was lost, so we checked your account: "
                     "it was executed.").format(ref=ref)  # fmt: skip
            body = _("{side} {volume} lots {symbol} at {price} · position #{ticket} · {account} account").format(
                side=_side(str(p.get("side", ""))), volume=f"{s.volume or 0:g}", symbol=o.symbol or "—",
                price=f"{s.price:g}" if s.price is not None else "—", ticket=s.ticket or "—", account=account,
            )  # fmt: skip
        elif o.kind is OrderKind.CLOSE:
            head = _("✅ <b>Order {ref} was executed.</b> The broker's answer was lost, so we checked your account: "
                     "the position was closed.").format(ref=ref)  # fmt: skip
            body = _("{volume} lots closed at {price} · position #{ticket} · {account} account").format(
                volume=f"{s.volume or 0:g}", price=f"{s.price:g}" if s.price is not None else "—",
                ticket=s.ticket or "—", account=account,
            )  # fmt: skip
        else:
            head = _("✅ <b>Stops updated.</b> The broker's answer was lost, so we checked your account: the change "
                     "was applied.")  # fmt: skip
            body = _("Position #{ticket} · {account} account").format(ticket=s.ticket or "—", account=account)
        return f"{head}\n{body}", keyboard([(_("📋 Positions"), PosCB(action="list"))])
    head = _("❌ <b>Order {ref} was not executed.</b> The broker's answer was lost and your account has no trace "
             "of it, so nothing was placed.").format(ref=ref)  # fmt: skip
    return f"{head}\n" + _("New orders on this account are accepted again."), None


class SettlementNotice:
    """``Reconciler.announce``: the settlement notice, in the user's language, queued in the settling
    transaction (sent if and only if the settlement commits; its key makes it once per order)."""

    def __init__(self, i18n: I18n, notifier: Callable[[], Notifier | None]) -> None:
        self._i18n = i18n
        self._notifier = notifier

    async def __call__(self, uow: UnitOfWork, settlement: Settlement) -> None:
        notifier = self._notifier()
        if notifier is None:
            return
        user = await uow.users.get(settlement.order.user_id)
        locale = user.locale if user is not None else "en"
        with self._i18n.context(), self._i18n.use_locale(locale):
            text, markup = settlement_view(settlement)
        key = f"order:{settlement.order.id}:settled"
        if not await notifier.send(settlement.order.user_id, text, markup, key=key, within=uow):
            logging.getLogger(__name__).info("settlement notice %s not queued: the user blocked the bot", key)
