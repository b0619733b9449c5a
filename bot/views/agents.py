"""/ai, /agents, /signals and the agents' proactive messages (real-time signals, the daily digest)."""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from aiogram import html
from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.callbacks import CallbackInt
from bot.i18n import N_, NP_, Plural
from bot.views import View
from bot.views.common import Button, ai_quota_line, keyboard, tier_name
from bot.views.market import ChartCB
from domain.agents.consensus import ConsensusDecision
from domain.agents.risk import RiskVote
from domain.agents.service import Analysis, Roster, SignalsPage
from domain.agents.votes import Direction
from domain.db.agents import StoredSignal
from domain.market.models import Timeframe


class SignalsCB(CallbackData, prefix="sg"):
    action: str  # page | sub | unsub (a filtered list) | drop (the full list) | follow | unfollow (under /ai)
    symbol: str = ""
    page: CallbackInt = 0
    uid: CallbackInt = 0  # the owner: a press by anyone else changes nothing
    tf: str = ""


AGENT_NAMES = {
    "trend": N_("Trend"),
    "reversion": N_("Mean reversion"),
    "momentum": N_("Momentum"),
    "breakout": N_("Breakout"),
    "learner": N_("Learner"),
    "risk": N_("Risk"),
    "consensus": N_("Consensus"),
}

AGENT_IDEAS = {
    "trend": N_("Follows established trends: price above EMA20 above EMA50 with +DI over −DI and ADX ≥ 20."),
    "reversion": N_("Fades stretched moves: RSI beyond 30/70 and close outside the Bollinger band, unless trending."),
    "momentum": N_("Rides momentum: MACD line, histogram and 10-bar rate of change all on one side."),
    "breakout": N_("Trades closes beyond the 20-bar Donchian channel by at least 0.1 ATR."),
    "learner": N_("Walk-forward logistic regression on price features, retrained only on past bars."),
    "risk": N_("Judges the volatility regime, vetoes extremes and sizes positions from your risk budget."),
}

RISK_IDEA = AGENT_IDEAS["risk"]

DIRECTIONS = {
    Direction.BUY: N_("🟢 buy"),
    Direction.SELL: N_("🔴 sell"),
    Direction.FLAT: N_("⚪ flat"),
}

REGIMES = {
    "warmup": N_("warming up"),
    "low": N_("low"),
    "normal": N_("normal"),
    "high": N_("high"),
    "extreme": N_("extreme"),
}

HEALTH = {
    "ok": N_("✅ ok"),
    "warmup": N_("⏳ warming up"),
    "error": N_("❌ errors"),
}

STATUSES = {
    "pending": N_("⏳ pending"),
    "hit": N_("✅ hit"),
    "miss": N_("❌ miss"),
}

# Rationale templates of every vote (keys from domain.agents), filled with the vote's numbers.
RATIONALES = {
    "trend.warmup": N_("Not enough history yet for the moving averages and ADX."),
    "trend.up": N_("Uptrend: close {close} > EMA20 {fast} > EMA50 {slow}, +DI {plus_di} > −DI {minus_di}, ADX {adx}."),
    "trend.down": N_(
        "Downtrend: close {close} < EMA20 {fast} < EMA50 {slow}, −DI {minus_di} > +DI {plus_di}, ADX {adx}."
    ),
    "trend.weak": N_("The averages line up but ADX {adx} is below 20: no established trend."),
    "trend.mixed": N_("Averages and DI disagree: close {close}, EMA20 {fast}, EMA50 {slow}, ADX {adx}."),
    "reversion.warmup": N_("Not enough history yet for RSI and the Bollinger bands."),
    "reversion.oversold": N_("Oversold: RSI {rsi} and close below the lower band {lower} (%B {percent_b}), ADX {adx}."),
    "reversion.overbought": N_(
        "Overbought: RSI {rsi} and close above the upper band {upper} (%B {percent_b}), ADX {adx}."
    ),
    "reversion.trending": N_("Stretched (RSI {rsi}) but ADX {adx} shows a trend: not fading it."),
    "reversion.neutral": N_("RSI {rsi} and %B {percent_b} are inside their bands: nothing to fade."),
    "momentum.warmup": N_("Not enough history yet for MACD and the rate of change."),
    "momentum.up": N_("Momentum up: MACD {macd} above zero, histogram {hist_atr} ATR, 10-bar change {roc}%."),
    "momentum.down": N_("Momentum down: MACD {macd} below zero, histogram {hist_atr} ATR, 10-bar change {roc}%."),
    "momentum.mixed": N_("MACD {macd}, histogram {hist_atr} ATR and 10-bar change {roc}% disagree."),
    "breakout.warmup": N_("Not enough history yet for the channel and ATR."),
    "breakout.up": N_("Close broke above the 20-bar high {channel_high} by {break_atr} ATR."),
    "breakout.down": N_("Close broke below the 20-bar low {channel_low} by {break_atr} ATR."),
    "breakout.marginal": N_("Close is just past the channel ({break_atr} ATR), under the 0.1 ATR filter."),
    "breakout.inside": N_("Close is inside the 20-bar channel {channel_low} – {channel_high}."),
    "learner.warmup": N_("The model is still collecting training data."),
    "learner.up": N_(
        "The model gives a higher close in 5 bars a {p_up} chance (training bars: {train_samples}; bars since "
        "its last refit: {model_age})."
    ),
    "learner.down": N_(
        "The model gives a higher close in 5 bars only a {p_up} chance (training bars: {train_samples}; bars "
        "since its last refit: {model_age})."
    ),
    "learner.unsure": N_("The model's chance of a higher close, {p_up}, is too close to even to call."),
    "risk.ok": N_("ATR is at the {atr_percentile} percentile of the last 250 bars; a 2 ATR stop is {stop_distance}."),
    "risk.warmup": N_("Not enough history to judge volatility: it vetoes until it has."),
    "risk.extreme_volatility": N_(
        "ATR is at the {atr_percentile} percentile, above the {veto_percentile} veto line: it vetoes."
    ),
    "risk.budget_over_cap": N_("Risking {risk_pct}% per trade is over the {max_risk_pct}% cap: it vetoes."),
    "risk.capped": N_("Volume {volume} lots, capped by the symbol's maximum; loss at the stop {loss_at_stop}."),
    "risk.budget_too_small": N_("Risking {risk_money} cannot buy the minimum volume: it vetoes."),
    "risk.budget_invalid": N_("The risk budget is not usable: it vetoes."),
}

EXPLANATIONS: dict[str, str | Plural] = {
    "consensus.agree": N_(
        "Agents backing {direction}: {backers} of the {voters} with a side, holding {agreement} of the weighted push "
        "(needed: {threshold}). Each vote counts by its agent's track record on this symbol and timeframe; "
        "the confidence, {confidence}, is the backers' record-weighted hit rate, an estimate of how often "
        "calls like this one hit."
    ),
    "consensus.no_quorum": NP_(
        "Only {voters} agent takes a side; the quorum is {quorum}, so there is no call. Flat agents see "
        "nothing worth trading on this bar.",
        "Only {voters} agents take a side; the quorum is {quorum}, so there is no call. Flat agents see "
        "nothing worth trading on this bar.",
    ),
    "consensus.no_track_record": NP_(
        "{voters} agent takes a side, but agents with a track record better than a coin toss on this symbol and "
        "timeframe: {weighted_voters} (quorum {quorum}). No call until their signals resolve and the records build up.",
        "{voters} agents take a side, but agents with a track record better than a coin toss on this symbol and "
        "timeframe: {weighted_voters} (quorum {quorum}). No call until their signals resolve and the records build up.",
    ),
    "consensus.tie": N_("The weighted votes cancel out exactly, so there is no call."),
    "consensus.disagreement": N_(
        "The agents disagree: the leading side, {leaning}, holds only {agreement} of the weighted push, below the "
        "{threshold} needed. No call."
    ),
    "consensus.vetoed": N_(
        "The agents lean {leaning}, but the Risk agent vetoes the trade: {veto}"
    ),
}

PRICE_VALUES = {"close", "fast", "slow", "upper", "lower", "channel_high", "channel_low", "stop_distance", "atr"}
PERCENT_VALUES = {"p_up", "atr_percentile", "veto_percentile", "agreement", "threshold", "confidence"}
INT_VALUES = {"train_samples", "model_age", "voters", "weighted_voters", "quorum", "for", "against"}


def agent_name(name: str) -> str:
    return _(AGENT_NAMES[name]) if name in AGENT_NAMES else html.quote(name)


def direction_name(direction: Direction | str) -> str:
    try:
        return _(DIRECTIONS[Direction(direction)])
    except ValueError:
        return html.quote(str(direction))


def pct(value: float) -> str:
    return f"{value * 100:.0f}%" if math.isfinite(value) else "—"


class Rendered(str):
    """A value that is already HTML (another filled template): formatted in as it is."""


def _fmt_value(name: str, value: object, digits: int) -> str:
    if isinstance(value, Rendered):
        return value
    if isinstance(value, str):
        return direction_name(value) if value in Direction.__members__.values() else html.quote(value)
    v = float(value)  # type: ignore[arg-type]
    if not math.isfinite(v):
        return "—"
    if name in PRICE_VALUES:
        return f"{v:.{digits}f}"
    if name in PERCENT_VALUES:
        return pct(v)
    if name in INT_VALUES:
        return str(int(round(v)))
    if name in ("macd", "signal"):
        return f"{v:.{digits + 1}f}"
    return f"{v:.2f}" if abs(v) < 1000 else f"{v:,.0f}"


class _Values(dict[str, str]):
    def __missing__(self, key: str) -> str:  # a template naming a value the agent left out (not finite)
        return "—"


def _first_field(template: str) -> str:
    """The name of a template's first placeholder: what a counted table phrase counts."""
    return next((name for _text, name, _spec, _conv in string.Formatter().parse(template) if name), "")


def fill(
    template_key: str, values: Mapping[str, object], digits: int, table: Mapping[str, str | Plural] = RATIONALES
) -> str:
    """The localized rationale of ``template_key`` with its numbers, as HTML (a template's "close < EMA20" is
    text, not a tag)."""
    msgid = table.get(template_key)
    if msgid is None:
        return html.quote(template_key)
    if isinstance(msgid, Plural):  # counted by its first placeholder's value
        count = values.get(_first_field(msgid[1]), 0)
        text = ngettext(msgid[0], msgid[1], int(count) if isinstance(count, (int, float)) else 0)
    else:
        text = _(msgid)
    return Rendered(html.quote(text).format_map(_Values({k: _fmt_value(k, v, digits) for k, v in values.items()})))


def local_time(epoch: int, tz: str) -> str:
    return datetime.fromtimestamp(epoch, UTC).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M")


# ---------- /ai ----------
def ai_usage() -> View:
    tfs = " ".join(tf.value for tf in Timeframe)
    return (
        _("Usage: <code>/ai SYMBOL [TIMEFRAME]</code>, e.g. <code>/ai EURUSD H1</code>.\nTimeframes: {tfs}").format(
            tfs=tfs
        ),
        None,
    )


def risk_block(risk: RiskVote | None, digits: int) -> list[str]:
    if risk is None:
        return [_("🛡 <b>Risk</b>: unavailable on this bar.")]
    verdict = _("vetoes") if risk.veto else _("no veto")
    head = _("🛡 <b>Risk</b> · regime {regime} · {verdict}").format(regime=_(REGIMES[risk.regime]), verdict=verdict)
    return [head, "<i>" + fill(risk.rationale_key, risk.values, digits) + "</i>"]


def explanation(decision: ConsensusDecision, digits: int) -> str:
    values: dict[str, object] = dict(decision.values)
    values["backers"] = int(values.get("for", 0))  # type: ignore[call-overload]
    values["direction"] = decision.direction.value
    if decision.risk is not None:
        values["veto"] = fill(decision.risk.rationale_key, decision.risk.values, digits)
    return fill(decision.explanation_key, values, digits, EXPLANATIONS)


def analysis_view(a: Analysis, uid: int, tz: str) -> View:
    d = a.decision
    lines = [_("🤖 <b>AI analysis · {symbol} {tf}</b>").format(symbol=a.symbol, tf=a.timeframe.value)]
    if d.time:
        lines.append(
            _("Bar of {time} (closed) · close {price}").format(
                time=local_time(d.time, tz), price=f"{d.price:.{a.digits}f}"
            )
        )
    lines.append("")
    for wv in d.votes:
        v = wv.vote
        head = _("<b>{agent}</b>: {direction} · confidence {confidence} · weight {weight:.2f} · hit rate {hit}").format(
            agent=agent_name(v.agent), direction=direction_name(v.direction), confidence=pct(v.confidence),
            weight=wv.weight, hit=pct(wv.hit_rate),
        )  # fmt: skip
        lines += [head, "<i>" + fill(v.rationale_key, v.values, a.digits) + "</i>"]
    lines += risk_block(d.risk, a.digits)
    lines.append("")
    lines.append(
        _("<b>Consensus: {direction}</b> · confidence {confidence} · agreement {agreement}").format(
            direction=direction_name(d.direction), confidence=pct(d.confidence), agreement=pct(d.agreement)
        )
    )
    lines.append(explanation(d, a.digits))
    if a.errors:
        lines.append(_("⚠️ Left out after an error on this bar: {agents}.").format(
            agents=", ".join(agent_name(n) for n in a.errors)))  # fmt: skip
    if a.limited:
        lines += [
            "",
            ngettext("🔒 Your plan shows {shown} of {total} agent; this consensus uses only them. "
                     "{locked} unlock with an upgrade: /premium",
                     "🔒 Your plan shows {shown} of {total} agents; this consensus uses only them. "
                     "{locked} unlock with an upgrade: /premium", len(d.votes) + len(a.locked)).format(
                shown=len(d.votes), total=len(d.votes) + len(a.locked),
                locked=", ".join(agent_name(n) for n in a.locked),
            ),
        ]  # fmt: skip
    lines.append(ai_quota_line(a.used, a.limit, a.renews_at, tz))
    return "\n".join(lines), follow_keyboard(a.symbol, a.timeframe.value, uid, a.subscribed)


def follow_keyboard(symbol: str, tf: str, uid: int, following: bool) -> InlineKeyboardMarkup:
    """The buttons under an analysis: its chart, and follow or stop following the symbol's signals."""
    buttons: list[Button] = [(_("📈 Chart"), ChartCB(symbol=symbol, tf=tf or "H1"))]
    if following:
        buttons.append((_("🔕 Stop signals"), SignalsCB(action="unfollow", symbol=symbol, uid=uid, tf=tf)))
    else:
        buttons.append((_("🔔 Follow signals"), SignalsCB(action="follow", symbol=symbol, uid=uid, tf=tf)))
    return keyboard(buttons)


# ---------- /agents ----------
def _move(before: float, now: float) -> str:
    delta = now - before
    if abs(delta) < 0.005:
        return _("steady")
    return ("▲ " if delta > 0 else "▼ ") + f"{delta:+.2f}"


def roster_view(r: Roster) -> View:
    lines = [_("🤖 <b>The agents</b>")]
    watched = ", ".join(f"{s} {tf}" for s, tf in r.watched)
    lines.append(_("Records on: {watched} (your watchlist, or EURUSD H1). Weights: log-odds of the decayed hit rate; "
                   "0 means no better than a coin.").format(watched=watched))  # fmt: skip
    locked = []
    for e in r.entries:
        if not e.unlocked:
            locked.append(e)
            continue
        lines += ["", ngettext("<b>{agent}</b> · {health} · horizon {h} bar", "<b>{agent}</b> · {health} · horizon {h} bars",
                               e.horizon).format(
            agent=agent_name(e.agent), health=_(HEALTH[e.health]), h=e.horizon)]  # fmt: skip
        lines.append("<i>" + _(AGENT_IDEAS[e.agent]) + "</i>" if e.agent in AGENT_IDEAS else "")
        for line in e.lines:
            n = line.stats.hits + line.stats.misses
            rate = pct(line.hit_rate) if line.hit_rate is not None else "—"
            lines.append(
                _("{symbol} {tf}: hit rate {rate} ({hits}/{n}) · weight {weight:.2f} · 7 d: {move}, {updates} resolved")
                .format(symbol=line.symbol, tf=line.timeframe, rate=rate, hits=line.stats.hits, n=n,
                        weight=line.weight, move=_move(line.weight_before, line.weight), updates=line.updates)
            )  # fmt: skip
    lines += ["", _("🛡 <b>Risk</b> · {health}").format(health=_(HEALTH[r.risk_health]))]
    lines.append("<i>" + _(RISK_IDEA) + "</i>")
    if r.risk_regime is not None:
        lines.append(_("Volatility regime now: {regime}").format(regime=_(REGIMES[r.risk_regime])))
    if locked:
        lines.append("")
        for e in locked:
            lines.append(
                _("🔒 <b>{agent}</b> — unlocks with {tier}: {idea}").format(
                    agent=agent_name(e.agent), tier=tier_name(e.unlock_tier or "pro"),
                    idea=_(AGENT_IDEAS[e.agent]) if e.agent in AGENT_IDEAS else "",
                )
            )  # fmt: skip
        lines.append(_("Compare plans: /premium"))
    return "\n".join(lines), None


# ---------- /signals ----------
def _signal_line(s: StoredSignal, digits: int, tz: str) -> str:
    text = _("{time} · <b>{symbol} {tf}</b> {direction} at {entry} · confidence {confidence} · {status}").format(
        time=local_time(s.time, tz), symbol=s.symbol, tf=s.timeframe, direction=direction_name(s.direction),
        entry=f"{s.entry:.{digits}f}", confidence=pct(s.confidence), status=_(STATUSES.get(s.status, s.status)),
    )  # fmt: skip
    if s.status != "pending" and s.move is not None:
        atr = f" ({s.move_atr:+.2f} ATR)" if s.move_atr is not None else ""
        text += " · " + _("moved {move}{atr}").format(move=f"{s.move:+.{digits}f}", atr=atr)
    return text


def signals_view(p: SignalsPage, uid: int, tz: str) -> View:
    title = (
        _("📡 <b>Consensus signals · {symbol}</b>").format(symbol=p.symbol)
        if p.symbol
        else _("📡 <b>Consensus signals</b>")
    )
    lines = [title]
    if not p.signals:
        lines.append(_("No signals yet. The agents call a signal only when enough of them, with good track "
                       "records, agree."))  # fmt: skip
    for s in p.signals:
        lines.append(_signal_line(s, p.digits.get(s.symbol, 5), tz))
    if p.pages > 1:
        lines.append(ngettext("Page {page} of {pages} · {total} signal", "Page {page} of {pages} · {total} signals",
                              p.total).format(page=p.page + 1, pages=p.pages, total=p.total))  # fmt: skip
    watch = ", ".join(p.watchlist) if p.watchlist else _("empty")
    lines += ["", _("Your watchlist ({used} / {limit}): {symbols}").format(used=len(p.watchlist), limit=p.limit,
                                                                          symbols=watch)]  # fmt: skip
    lines.append(_("Filter: <code>/signals SYMBOL</code>. Watched symbols' signals are sent to you."))
    buttons: list[Button] = []
    sym = p.symbol or ""
    if p.page > 0:
        buttons.append((_("◀️ Newer"), SignalsCB(action="page", symbol=sym, page=p.page - 1, uid=uid)))
    if p.page + 1 < p.pages:
        buttons.append((_("Older ▶️"), SignalsCB(action="page", symbol=sym, page=p.page + 1, uid=uid)))
    if p.symbol:
        if p.symbol in p.watchlist:
            buttons.append((_("🔕 Unfollow {symbol}").format(symbol=p.symbol),
                            SignalsCB(action="unsub", symbol=p.symbol, page=p.page, uid=uid)))  # fmt: skip
        else:
            buttons.append((_("🔔 Follow {symbol}").format(symbol=p.symbol),
                            SignalsCB(action="sub", symbol=p.symbol, page=p.page, uid=uid)))  # fmt: skip
    else:
        for symbol in p.watchlist[:6]:
            buttons.append((_("🔕 Unfollow {symbol}").format(symbol=symbol),
                            SignalsCB(action="drop", symbol=symbol, uid=uid)))  # fmt: skip
    return "\n".join(lines), keyboard(buttons) if buttons else None


def subscribed_note(symbol: str, following: bool) -> str:
    if following:
        return _("🔔 Following {symbol}").format(symbol=symbol)
    return _("🔕 Stopped following {symbol}").format(symbol=symbol)


# ---------- proactive ----------
def realtime_signal_view(s: StoredSignal, decision: ConsensusDecision, digits: int, tz: str) -> View:
    lines = [
        _("📡 <b>New consensus signal: {symbol} {tf} {direction}</b>").format(
            symbol=s.symbol, tf=s.timeframe, direction=direction_name(s.direction)
        ),
        ngettext("Entry {entry} (close of the {time} bar) · confidence {confidence} · agreement {agreement} · "
                 "horizon {h} bar", "Entry {entry} (close of the {time} bar) · confidence {confidence} · agreement "
                 "{agreement} · horizon {h} bars", s.horizon).format(
            entry=f"{s.entry:.{digits}f}", time=local_time(s.time, tz), confidence=pct(s.confidence),
            agreement=pct(decision.agreement), h=s.horizon,
        ),
        explanation(decision, digits),
    ]  # fmt: skip
    backers = [agent_name(w.vote.agent) for w in decision.votes if w.vote.direction is decision.direction]
    if backers:
        lines.append(_("Backed by: {agents}").format(agents=", ".join(backers)))
    lines.append(_("Not investment advice. Full analysis: /ai {symbol}").format(symbol=s.symbol))
    buttons: list[Button] = [(_("📈 Chart"), ChartCB(symbol=s.symbol, tf=s.timeframe))]
    return "\n".join(lines), keyboard(buttons)


def digest_view(signals: Sequence[StoredSignal], digits: Mapping[str, int], tz: str) -> View:
    lines = [_("📰 <b>Your daily AI signal digest</b>"), _("The most confident consensus signals of the last 24 hours "
                                                           "on your watchlist:")]  # fmt: skip
    for s in signals:
        lines.append(_signal_line(s, digits.get(s.symbol, 5), tz))
    lines.append(_("Real-time signals come with Pro: /premium"))
    return "\n".join(lines), None
