"""/positions, /balance, /trade, /close, /history, /risk, /trading."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import gettext as _

from bot.i18n import N_
from bot.views import View
from bot.views.common import Button, keyboard, on_off, tier_name
from domain.market.models import Account, Deal, Position, Retcode
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
    TradingProfile,
)


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
    ticket: int = 0


class HistCB(CallbackData, prefix="hi"):
    page: int = 0
    days: int = 7
    symbol: str = ""


class RiskCB(CallbackData, prefix="rk"):
    field: str = ""


class TradingCB(CallbackData, prefix="tg"):
    action: str  # home, demo, live, kill, auto, link, unlink
    value: int = 0


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
    "max_positions": N_("you have {value} open positions; your limit is {limit}"),
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
            return _("This order is being sent; it is placed only once."), None
        if e.order.status is OrderStatus.DONE:
            return _("This order was already placed (it is never sent twice)."), None
        status = STATUS_NAMES.get(e.order.status)
        return _("This order is closed: {status}.").format(status=_(status) if status else e.order.status.value), None
    codes = ", ".join(f"{retcode_text(c)} ({c})" for c in e.retcodes)
    what = _("Position closed") if e.order.kind is OrderKind.CLOSE else _("Order placed")
    if e.order.kind is OrderKind.MODIFY:
        what = _("Stops updated")
    if e.ok:
        extra = _(" at {price}").format(price=e.price) if e.price else ""
        return f"✅ {what}{extra}. " + _("Broker: {codes}").format(codes=codes), keyboard(
            [(_("📋 Positions"), PosCB(action="list"))]
        )
    return "❌ " + _("Not executed. Broker: {codes}").format(codes=codes), None


def cancelled_view() -> View:
    return _("Cancelled. Nothing was sent."), None


def balance_view(account: LinkedAccount, info: Account) -> View:
    level = f"{info.margin_level:.1f}%" if info.margin_level else "—"
    lines = [
        _("<b>💰 Balance</b> · {kind} account {login}").format(kind=kind_name(account.kind), login=info.login),
        _("Balance: {v}").format(v=_money(info.balance, info.currency)),
        _("Equity: {v}").format(v=_money(info.equity, info.currency)),
        _("Margin: {v}").format(v=_money(info.margin, info.currency)),
        _("Free margin: {v}").format(v=_money(info.margin_free, info.currency)),
        _("Margin level: {v}").format(v=level),
        _("Leverage 1:{lev} · currency {cur} · server {server}").format(
            lev=info.leverage, cur=info.currency, server=info.server),
    ]  # fmt: skip
    return "\n".join(lines), keyboard([(_("📋 Positions"), PosCB(action="list")), (_("⚙️ Trading"),
                                       TradingCB(action="home"))])  # fmt: skip


def positions_view(account: LinkedAccount, info: Account, positions: list[Position], digits: dict[str, int]) -> View:
    lines = [_("<b>📋 Open positions</b> · {kind} account").format(kind=kind_name(account.kind))]
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
    head = _("<b>📜 Closed deals</b> · {kind} · last {days} days").format(kind=kind_name(account.kind), days=days)
    if symbol:
        head += f" · {symbol}"
    lines = [head]
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
    lines += ["", _("Total: {total} · {n} deals, {wins} in profit").format(
        total=_money(total, info.currency), n=len(deals), wins=wins)]  # fmt: skip
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
                                                              server=account.server),  # fmt: skip
        _("Auto-trading: {state}").format(state=on_off(profile.auto_trading)),
        _("Kill switch: {state}").format(state=_("ON, new orders blocked") if profile.kill_switch else _("off")),
        _("Today's P/L: {pnl} (realized {r}, floating {f})").format(
            pnl=_money(pnl.total, cur), r=_money(pnl.realized, cur), f=_money(pnl.floating, cur)),
        _("Daily loss: {used}% of {limit}% allowed").format(
            used=f"{pnl.loss_pct:.2f}", limit=f"{profile.limits.max_daily_loss_pct:g}"),
    ]  # fmt: skip
    if live is not None:
        lines.append(_("Linked live account: {login} on {server}").format(login=live.login, server=live.server))
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
        login=account.login, server=account.server
    ), keyboard([(_("⚙️ Trading"), TradingCB(action="home"))])


def link_failed_text() -> str:
    return _("The broker refused this login, server or password. Nothing was stored. Try again from /trading.")


def unlinked_text() -> str:
    return _("Live account unlinked; the stored password was deleted. You are on the demo account.")


def live_locked_text(tier: str) -> str:
    return _("Live MT5 accounts need the {tier} plan or higher. /premium shows the plans; the demo account stays "
             "free.").format(tier=tier_name(tier))  # fmt: skip
