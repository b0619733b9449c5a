"""Auto-trading: orders from consensus signals, sized by the Risk agent, within the /risk limits.

A user on a plan with ``Feature.AUTO_TRADING`` switches it on in /trading and
chooses a minimum consensus confidence (threshold), the symbols and the
timeframe to trade, and the percent of equity risked per trade (never above
the /risk ``risk_per_trade_pct`` limit, nor the Risk agent's own cap).

After every closed bar the agent runner hands each consensus decision to
:meth:`AutoTrader.on_decision`. For each user auto-trading that symbol and
timeframe it:

1. skips silently when the decision is flat or vetoed, the bar is stale (not
   the last closed one: a runner catching up after a restart never trades the
   past), the kill switch is on, the plan no longer includes auto-trading, or
   the confidence is below the user's threshold;
2. skips silently when a position on that symbol is already open in the
   signal's direction; on an OPPOSITE signal it neither hedges nor reverses:
   it skips the order and tells the user once per position (closing is the
   user's call, in /positions);
3. claims the signal: one row per (user, symbol, timeframe, bar time),
   committed before anything is sent, so a repeated call (twice, after a
   restart, on another replica) places nothing more;
4. sizes the order with ``RiskAgent.assess`` (volume from the risk percent
   and the ATR stop, profit currency converted to the account's), caps it at
   the /risk ``max_volume``; the stop loss sits at the ATR stop, the take
   profit at ``TP_RATIO`` times that distance;
5. previews and executes it through :class:`TradingService` on the demo
   account (or the active live account when live auto-trading was explicitly
   confirmed a second time), so the kill switch and every /risk limit are
   checked again on fresh account data right before sending, and every step
   is audited with surface ``worker``; the order's params carry ``auto`` and
   the decision (confidence, agreement, bar time);
6. reports the outcome (placed, rejected, blocked by a limit, refused by the
   Risk agent, failed) through the reporter with a de-duplication key. An
   order the kill switch stopped is not reported: after the kill switch
   nothing goes out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from domain.agents.consensus import ConsensusDecision
from domain.agents.risk import RiskAgent, RiskBudget, SizingSpec
from domain.agents.series import Series
from domain.agents.votes import Direction
from domain.audit import AuditEntry, Surface
from domain.clock import utcnow
from domain.errors import DomainError, FeatureLocked, InvalidInput
from domain.market.models import Account, Bar, Position, Side, SymbolSpec, Timeframe
from domain.tiers import Feature, Tier, TierCatalog
from domain.trading.market import market_errors
from domain.trading.models import (
    AccountKind,
    LinkedAccount,
    NoLiveAccount,
    OrderStatus,
    RiskBreachInfo,
    TradingProfile,
    parse_number,
)

if TYPE_CHECKING:  # the unit of work imports this module's dataclasses through its repository
    from domain.db.uow import UnitOfWork
    from domain.trading.service import TradingService
    from domain.users import UserService

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.6
THRESHOLD_RANGE = (0.5, 0.95)
DEFAULT_RISK_PCT = 1.0
MIN_RISK_PCT = 0.1
DEFAULT_SYMBOLS = ("EURUSD",)
MAX_SYMBOLS = 8
DEFAULT_TIMEFRAMES = (Timeframe.H1,)  # what the agent runner processes; the app passes the runner's own
HOLDING_TIMEFRAME = Timeframe.H1
TP_RATIO = 2.0
HISTORY_BARS = 400


# ---- vocabulary -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AutoSettings:
    user_id: int
    threshold: float = DEFAULT_THRESHOLD  # minimum consensus confidence, 0..1
    risk_pct: float = DEFAULT_RISK_PCT  # of equity at the stop loss
    timeframe: Timeframe = Timeframe.H1
    symbols: tuple[str, ...] = DEFAULT_SYMBOLS
    live_confirmed_at: datetime | None = None  # the second confirmation for live auto-trading

    @property
    def live_confirmed(self) -> bool:
        return self.live_confirmed_at is not None


@dataclass(frozen=True, slots=True)
class AutoTradeRecord:
    user_id: int
    symbol: str
    timeframe: str
    bar_time: int
    direction: str
    status: str  # claimed, then an Outcome value
    order_id: str | None
    details: dict[str, Any]
    created_at: datetime


class Outcome(StrEnum):
    PLACED = "placed"  # the broker accepted the order
    REJECTED = "rejected"  # the broker refused it
    BLOCKED = "blocked"  # a /risk limit refused it before sending
    RISK_VETO = "risk_veto"  # the Risk agent would not size it (volatility regime, budget)
    OPPOSITE = "opposite"  # the user holds the other side: nothing placed, the user is told
    FAILED = "failed"  # the trading server failed; nothing or (timeout) possibly something was sent
    # silent outcomes
    KILLED = "killed"  # the kill switch was on (before, or by the time of sending)
    LOCKED = "locked"  # the plan no longer includes auto-trading
    BELOW = "below_threshold"
    HOLDING = "holding"  # already holding that direction
    STALE = "stale"  # not the last closed bar
    DUPLICATE = "duplicate"  # this signal was already claimed for this user


REPORTED = frozenset({Outcome.PLACED, Outcome.REJECTED, Outcome.BLOCKED, Outcome.RISK_VETO, Outcome.OPPOSITE,
                      Outcome.FAILED})  # fmt: skip


@dataclass(frozen=True, slots=True)
class AutoReport:
    """What the user is told about one signal (rendered by the bot in the user's language)."""

    key: str  # de-duplication key for the notifier
    user_id: int
    locale: str
    timezone: str
    outcome: Outcome
    symbol: str
    timeframe: Timeframe
    side: Side
    bar_time: int
    confidence: float
    agreement: float
    account: AccountKind
    digits: int = 5
    volume: float | None = None
    price: float | None = None
    sl: float | None = None
    tp: float | None = None
    risk_pct: float | None = None
    breach: RiskBreachInfo | None = None
    retcodes: tuple[int, ...] = ()
    reason: str = ""  # Risk agent rationale key, or an error code
    ticket: int | None = None  # the opposite position
    held: Side | None = None
    simulated: bool = False  # the account trades simulated prices: the report says so
    order_id: str | None = None


@dataclass(frozen=True, slots=True)
class AutoResult:
    user_id: int
    outcome: Outcome
    report: AutoReport | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """The current consensus on one of the user's symbols, as the panel shows it."""

    symbol: str
    decision: ConsensusDecision | None  # None: no consensus could be computed right now
    error: str = ""  # the error code when it could not

    def qualifies(self, threshold: float) -> bool:
        d = self.decision
        return d is not None and d.direction is not Direction.FLAT and not d.vetoed and d.confidence >= threshold


@dataclass(frozen=True, slots=True)
class AutoPanel:
    profile: TradingProfile
    settings: AutoSettings
    allowed: bool  # the plan includes auto-trading
    needed_tier: str  # the cheapest plan that does ("" when none)
    live_allowed: bool  # the plan includes live trading
    live: LinkedAccount | None
    account: AccountKind  # where auto orders go now
    max_risk_pct: float  # the highest risk percent allowed (the /risk limit and the Risk agent's cap)
    pending: tuple[Pending, ...]
    recent: tuple[AutoTradeRecord, ...] = ()
    timeframes: tuple[Timeframe, ...] = DEFAULT_TIMEFRAMES  # the ones the runner produces decisions for


class Stance(StrEnum):
    SUPPORTS = "supports"
    AGAINST = "against"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class Holdings:
    account: LinkedAccount
    info: Account
    positions: list[Position]
    digits: dict[str, int]
    opinions: dict[str, ConsensusDecision | None] = field(default_factory=dict)
    timeframe: Timeframe = HOLDING_TIMEFRAME


def stance(side: Side, decision: ConsensusDecision | None) -> Stance:
    """Whether the consensus supports holding a position on ``side``."""
    if decision is None or decision.direction is Direction.FLAT or decision.vetoed:
        return Stance.NONE
    return Stance.SUPPORTS if decision.direction.value == side.value else Stance.AGAINST


class ConsensusSource(Protocol):
    """The agents' consensus on demand (``AgentService``)."""

    async def consensus(self, uow: UnitOfWork, symbol: str, tf: Timeframe) -> ConsensusDecision: ...


Reporter = Callable[[AutoReport], Awaitable[object]]


# ---- errors -------------------------------------------------------------------------------------


class AutoSettingOutOfRange(InvalidInput):
    """params: field (threshold, risk_pct), low, high"""

    code = "AUT-RANGE"


class TooManySymbols(InvalidInput):
    """params: limit"""

    code = "AUT-SYMBOLS"


class AutoTradeRefused(DomainError):
    """A button that is not this user's, or a live confirmation that was never asked for (nothing changes)."""

    code = "AUT-REFUSED"


# ---- the service --------------------------------------------------------------------------------


class AutoTrader:
    def __init__(
        self,
        unit: Callable[[], UnitOfWork],
        trading: TradingService,
        users: UserService,
        tiers: TierCatalog,
        *,
        agents: ConsensusSource | None = None,
        reporter: Reporter | None = None,
        risk: RiskAgent | None = None,
        timeframes: tuple[Timeframe, ...] = DEFAULT_TIMEFRAMES,
    ) -> None:
        self._unit = unit
        self.trading = trading
        self._users = users
        self._tiers = tiers
        self.agents = agents
        self.reporter = reporter
        self.risk = risk or RiskAgent()
        self.timeframes = timeframes

    # ---- settings and the panel ------------------------------------------------------------
    async def settings(self, uow: UnitOfWork, user_id: int) -> AutoSettings:
        stored = await uow.autotrade.settings(user_id)
        if stored is not None:
            return stored
        subscribed = (await uow.agents.subscriptions(user_id))[:MAX_SYMBOLS]  # the AI signal watchlist
        return AutoSettings(user_id, symbols=tuple(subscribed) or DEFAULT_SYMBOLS)

    def max_risk_pct(self, profile: TradingProfile) -> float:
        return min(profile.limits.risk_per_trade_pct, self.risk.max_risk_pct)

    async def panel(self, uow: UnitOfWork, user_id: int, tier: Tier, *, pending: bool = True) -> AutoPanel:
        profile = await uow.trading.profile(user_id)
        settings = await self.settings(uow, user_id)
        live = await self.trading.live_account(uow, user_id)
        needed = self._tiers.required_for(min_tier=None, feature=Feature.AUTO_TRADING)
        decisions: tuple[Pending, ...] = ()
        if pending and self.agents is not None:
            decisions = tuple([await self._pending(uow, s, settings.timeframe) for s in settings.symbols])
        return AutoPanel(
            profile, settings, tier.has(Feature.AUTO_TRADING), needed.code if needed else "",
            tier.has(Feature.LIVE_TRADING), live, self._account(profile, settings, tier, live),
            self.max_risk_pct(profile), decisions, tuple(await uow.autotrade.recent(user_id, 3)), self.timeframes,
        )  # fmt: skip

    async def _pending(self, uow: UnitOfWork, symbol: str, tf: Timeframe) -> Pending:
        assert self.agents is not None
        try:
            return Pending(symbol, await self.agents.consensus(uow, symbol, tf))
        except DomainError as exc:
            return Pending(symbol, None, exc.code)
        except Exception:  # the panel and /positions still work when the agents fail
            log.exception("consensus for %s %s failed", symbol, tf.value)
            return Pending(symbol, None, "error")

    @staticmethod
    def _account(
        profile: TradingProfile, settings: AutoSettings, tier: Tier, live: LinkedAccount | None
    ) -> AccountKind:
        """Demo unless live auto-trading was confirmed, the live account is the one in use, and the plan allows it."""
        if (settings.live_confirmed and profile.active is AccountKind.LIVE and live is not None
                and tier.has(Feature.LIVE_TRADING)):  # fmt: skip
            return AccountKind.LIVE
        return AccountKind.DEMO

    def require(self, tier: Tier) -> None:
        if not tier.has(Feature.AUTO_TRADING):
            needed = self._tiers.required_for(min_tier=None, feature=Feature.AUTO_TRADING)
            raise FeatureLocked("auto-trading", feature=Feature.AUTO_TRADING.value, tier=needed.code if needed else "")

    async def set_enabled(self, uow: UnitOfWork, user_id: int, tier: Tier, on: bool) -> AutoPanel:
        """Switch auto-trading on (the plan must include it) or off (always allowed)."""
        if on:
            self.require(tier)
        profile = await uow.trading.profile(user_id)
        settings = await self.settings(uow, user_id)
        now = utcnow()
        if on and await uow.autotrade.settings(user_id) is None:
            await uow.autotrade.save(settings, now)  # the defaults become the user's own list
        await uow.trading.save_profile(replace(profile, auto_trading=on), now)
        await uow.audit.append(AuditEntry("autotrade.switched", user_id, user_id, Surface.CHAT, {
            "on": on, "symbols": list(settings.symbols), "threshold": settings.threshold,
            "risk_pct": settings.risk_pct, "timeframe": settings.timeframe.value}))  # fmt: skip
        await uow.commit()
        return await self.panel(uow, user_id, tier)

    async def _update(self, uow: UnitOfWork, user_id: int, tier: Tier, settings: AutoSettings,
                      details: dict[str, Any]) -> AutoPanel:  # fmt: skip
        await uow.autotrade.save(settings, utcnow())
        await uow.audit.append(AuditEntry("autotrade.settings", user_id, user_id, Surface.CHAT, details))
        await uow.commit()
        return await self.panel(uow, user_id, tier)

    async def set_threshold(self, uow: UnitOfWork, user_id: int, tier: Tier, raw: str) -> AutoPanel:
        """``raw`` in percent (``"65"``) or as a fraction (``"0.65"``)."""
        self.require(tier)
        value = parse_number(raw, "threshold")
        value = value / 100 if value > 1 else value
        lo, hi = THRESHOLD_RANGE
        if not lo <= value <= hi:
            raise AutoSettingOutOfRange("threshold", field="threshold", low=f"{lo:.0%}", high=f"{hi:.0%}")
        settings = replace(await self.settings(uow, user_id), threshold=round(value, 4))
        return await self._update(uow, user_id, tier, settings, {"threshold": settings.threshold})

    async def set_risk(self, uow: UnitOfWork, user_id: int, tier: Tier, raw: str) -> AutoPanel:
        self.require(tier)
        value = parse_number(raw, "risk_pct")
        high = self.max_risk_pct(await uow.trading.profile(user_id))
        if not MIN_RISK_PCT <= value <= high + 1e-9:
            raise AutoSettingOutOfRange("risk", field="risk_pct", low=f"{MIN_RISK_PCT:g}%", high=f"{high:g}%")
        settings = replace(await self.settings(uow, user_id), risk_pct=round(value, 2))
        return await self._update(uow, user_id, tier, settings, {"risk_pct": settings.risk_pct})

    async def set_timeframe(self, uow: UnitOfWork, user_id: int, tier: Tier, raw: str) -> AutoPanel:
        self.require(tier)
        try:
            tf = Timeframe(raw.strip().upper())
        except ValueError:
            raise InvalidInput("timeframe", value=raw[:8]) from None
        if tf not in self.timeframes:
            raise InvalidInput("timeframe", value=tf.value)
        settings = replace(await self.settings(uow, user_id), timeframe=tf)
        return await self._update(uow, user_id, tier, settings, {"timeframe": tf.value})

    async def toggle_symbol(self, uow: UnitOfWork, user_id: int, tier: Tier, raw: str) -> AutoPanel:
        """Add a symbol (checked against the terminal: unknown names change nothing) or remove it."""
        self.require(tier)
        settings = await self.settings(uow, user_id)
        name = raw.strip().upper()
        if name in settings.symbols:
            symbols = tuple(s for s in settings.symbols if s != name)
        else:
            spec = await self.trading.hub.resolve(name)  # SymbolNotFound for forged or mistyped names
            if len(settings.symbols) >= MAX_SYMBOLS:
                raise TooManySymbols("symbols", limit=MAX_SYMBOLS)
            symbols = (*settings.symbols, spec.name)
        settings = replace(settings, symbols=symbols)
        return await self._update(uow, user_id, tier, settings, {"symbols": list(symbols)})

    async def _live(self, uow: UnitOfWork, user_id: int, tier: Tier) -> LinkedAccount:
        self.require(tier)
        self.trading.require_live(tier)
        live = await self.trading.live_account(uow, user_id)
        if live is None:
            raise NoLiveAccount("no live account linked")
        return live

    async def live_offer(self, uow: UnitOfWork, user_id: int, tier: Tier) -> AutoPanel:
        """The first step toward live auto-trading: the panel to ask for the second confirmation with."""
        await self._live(uow, user_id, tier)
        return await self.panel(uow, user_id, tier, pending=False)

    async def confirm_live(self, uow: UnitOfWork, user_id: int, tier: Tier) -> AutoPanel:
        """The explicit second confirmation: auto orders may now go to the live account when it is in use."""
        live = await self._live(uow, user_id, tier)
        now = utcnow()
        settings = replace(await self.settings(uow, user_id), live_confirmed_at=now)
        await uow.autotrade.save(settings, now)
        await uow.audit.append(AuditEntry("autotrade.live_confirmed", user_id, user_id, Surface.CHAT,
                                          {"login": live.login, "server": live.server}))  # fmt: skip
        await uow.commit()
        return await self.panel(uow, user_id, tier)

    async def use_demo(self, uow: UnitOfWork, user_id: int, tier: Tier) -> AutoPanel:
        """Withdraw the live confirmation: auto orders go to the demo account (always allowed)."""
        settings = await self.settings(uow, user_id)
        if settings.live_confirmed:
            await uow.autotrade.save(replace(settings, live_confirmed_at=None), utcnow())
            await uow.audit.append(AuditEntry("autotrade.live_revoked", user_id, user_id, Surface.CHAT, {}))
            await uow.commit()
        return await self.panel(uow, user_id, tier)

    async def revoke_live(self, uow: UnitOfWork, user_id: int) -> None:
        """After the live account is unlinked or re-linked, the confirmation must be given again."""
        settings = await uow.autotrade.settings(user_id)
        if settings is not None and settings.live_confirmed:
            await uow.autotrade.save(replace(settings, live_confirmed_at=None), utcnow())
            await uow.audit.append(AuditEntry("autotrade.live_revoked", user_id, user_id, Surface.CHAT,
                                              {"reason": "live account changed"}))  # fmt: skip
            await uow.commit()

    # ---- /positions --------------------------------------------------------------------------
    async def holdings(self, uow: UnitOfWork, user_id: int, tier: Tier) -> Holdings:
        """Open positions with the current H1 consensus on each symbol (when the agents are available)."""
        account, info, positions, digits = await self.trading.positions(uow, user_id, tier)
        opinions: dict[str, ConsensusDecision | None] = {}
        if self.agents is not None:
            for symbol in dict.fromkeys(p.symbol for p in positions):
                opinions[symbol] = (await self._pending(uow, symbol, HOLDING_TIMEFRAME)).decision
        return Holdings(account, info, positions, digits, opinions)

    # ---- the runner's side -------------------------------------------------------------------
    async def _enabled(self, uow: UnitOfWork) -> list[AutoSettings]:
        return [stored or await self.settings(uow, user_id) for user_id, stored in await uow.autotrade.enabled()]

    async def watched_symbols(self) -> set[str]:
        """Symbols some user auto-trades: the agent runner must compute their consensus."""
        async with self._unit() as uow:
            return {symbol for s in await self._enabled(uow) for symbol in s.symbols}

    async def listen(self, symbol: str, tf: Timeframe, decision: ConsensusDecision) -> None:
        """The agent runner's listener (awaited after each processed bar close)."""
        await self.on_decision(symbol, tf, decision)

    async def on_decision(self, symbol: str, tf: Timeframe, decision: ConsensusDecision) -> list[AutoResult]:
        """Act on one closed bar's consensus for every user auto-trading ``symbol`` on ``tf``."""
        if decision.direction is Direction.FLAT or decision.vetoed:
            return []
        async with self._unit() as uow:
            candidates = [s for s in await self._enabled(uow) if s.timeframe is tf and symbol in s.symbols]
        results: list[AutoResult] = []
        for settings in candidates:
            try:
                result = await self._for_user(settings, symbol, tf, decision)
            except Exception:
                log.exception("auto-trading %s %s for user %s failed", symbol, tf, settings.user_id)
                continue
            results.append(result)
            if result.report is not None and self.reporter is not None:
                try:
                    await self.reporter(result.report)
                except Exception:
                    log.exception("auto-trading report %s could not be sent", result.report.key)
        return results

    async def _closed_bars(self, symbol: str, tf: Timeframe) -> list[Bar]:
        """Bars that have closed by the terminal's clock (the forming one is dropped)."""
        now = self.trading.hub.terminal.now_ms() // 1000
        return [b for b in await self.trading.hub.bars(symbol, tf, HISTORY_BARS + 1) if b.time + tf.seconds <= now]

    async def _for_user(self, s: AutoSettings, symbol: str, tf: Timeframe, d: ConsensusDecision) -> AutoResult:
        uid = s.user_id
        side = Side.BUY if d.direction is Direction.BUY else Side.SELL
        async with self._unit() as uow:
            user = await uow.users.get(uid)
            profile = await uow.trading.profile(uid)
            if user is None or not profile.auto_trading:
                return AutoResult(uid, Outcome.LOCKED)
            if profile.kill_switch:
                return AutoResult(uid, Outcome.KILLED)
            tier = self._users.tier_of(user)
            if not tier.has(Feature.AUTO_TRADING):
                return AutoResult(uid, Outcome.LOCKED)
            if d.confidence < s.threshold:
                return AutoResult(uid, Outcome.BELOW)
            kind = self._account(profile, s, tier, await self.trading.live_account(uow, uid))
            spec = await self.trading.hub.resolve(symbol)
            bars = await self._closed_bars(spec.name, tf)
            if not bars or d.time != bars[-1].time:  # only the latest closed bar trades, never a caught-up one
                return AutoResult(uid, Outcome.STALE)
            report = _Report(uid, user.locale, user.timezone, spec, tf, side, d, kind, self.trading.simulated(kind))
            account, gw = await self.trading.active(uow, uid, tier, kind)
            async with market_errors(spec.name):
                positions = [p for p in await gw.positions() if p.symbol == spec.name]
            if any(p.side is side for p in positions):
                return AutoResult(uid, Outcome.HOLDING)
            if positions:
                held = positions[0]
                return AutoResult(uid, Outcome.OPPOSITE, report.make(
                    Outcome.OPPOSITE, key=f"autotrade:{uid}:opposite:{held.ticket}:{side.value}",
                    ticket=held.ticket, held=held.side))  # fmt: skip
            note = {"auto": True, "timeframe": tf.value, "bar_time": d.time, "confidence": round(d.confidence, 4),
                    "agreement": round(d.agreement, 4), "direction": d.direction.value}  # fmt: skip
            if not await uow.autotrade.claim(uid, spec.name, tf, d.time, side.value, note, utcnow()):
                await uow.rollback()
                return AutoResult(uid, Outcome.DUPLICATE)
            await uow.commit()
            try:
                result = await self._place(uow, s, tier, profile, account.kind, gw, spec, bars, side, d, note, report)
            except Exception as exc:  # the claim stays: this signal is never retried
                if not isinstance(exc, DomainError):
                    log.exception("auto order %s %s for user %s failed", spec.name, tf, uid)
                await uow.rollback()
                reason = getattr(exc, "code", type(exc).__name__)
                result = AutoResult(uid, Outcome.FAILED, report.make(Outcome.FAILED, reason=reason))
            rep = result.report
            await uow.autotrade.finish(uid, spec.name, tf, d.time, result.outcome.value,
                                       rep.order_id if rep else None, _details(rep), utcnow())  # fmt: skip
            await uow.audit.append(AuditEntry("autotrade.order", uid, uid, Surface.WORKER, {
                **note, "symbol": spec.name, "outcome": result.outcome.value, "account": account.kind.value,
                **_details(rep)}))  # fmt: skip
            await uow.commit()
            return result

    async def _place(
        self, uow: UnitOfWork, s: AutoSettings, tier: Tier, profile: TradingProfile, kind: AccountKind, gw: Any,
        spec: SymbolSpec, bars: list[Bar], side: Side, d: ConsensusDecision, note: dict[str, Any], report: _Report,
    ) -> AutoResult:  # fmt: skip
        uid, tf = s.user_id, s.timeframe
        async with market_errors(spec.name):
            info = await gw.account()
        series = Series.from_bars(bars, symbol=spec.name, timeframe=tf)
        rate = await self.trading.conversion(spec.currency_profit, info.currency)
        risk_pct = min(s.risk_pct, self.max_risk_pct(profile))
        vote = self.risk.assess(series, RiskBudget(info.equity, risk_pct), SizingSpec.from_symbol(spec, rate))
        if vote.veto or vote.sizing is None or vote.sizing.volume <= 0:
            return AutoResult(uid, Outcome.RISK_VETO, report.make(Outcome.RISK_VETO, reason=vote.rationale_key))
        volume = min(vote.sizing.volume, _floor_step(profile.limits.max_volume, spec.volume_step))
        if volume < spec.volume_min:
            return AutoResult(uid, Outcome.RISK_VETO, report.make(Outcome.RISK_VETO, reason="risk.budget_too_small"))
        tick = await self.trading.hub.tick(spec.name)
        price = tick.ask if side is Side.BUY else tick.bid
        sl, tp = _stops(side, price, vote.stop_distance, spec.digits)
        preview = await self.trading.preview_open(
            uow, uid, tier, side, spec.name, volume, sl, tp, account=kind, surface=Surface.WORKER,
            note={**note, "risk_pct": risk_pct, "requested_risk_pct": s.risk_pct, "stop_distance": vote.stop_distance},
        )  # fmt: skip
        execution = await self.trading.execute(uow, uid, tier, preview.order.id, account=kind, surface=Surface.WORKER)
        common = dict(volume=preview.volume, price=execution.price or preview.price, sl=sl, tp=tp,
                      risk_pct=preview.risk_pct, order_id=preview.order.id, retcodes=execution.retcodes)  # fmt: skip
        if execution.breach is not None:
            if execution.breach.rule == "kill_switch":
                return AutoResult(uid, Outcome.KILLED)  # stopped at once, and nothing more goes out
            return AutoResult(uid, Outcome.BLOCKED, report.make(Outcome.BLOCKED, breach=execution.breach, **common))
        if execution.ok:
            return AutoResult(uid, Outcome.PLACED, report.make(Outcome.PLACED, **common))
        if execution.order.status is OrderStatus.REJECTED:
            return AutoResult(uid, Outcome.REJECTED, report.make(Outcome.REJECTED, **common))
        return AutoResult(uid, Outcome.FAILED, report.make(Outcome.FAILED, reason=execution.order.status.value,
                                                           **common))  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Report:
    """The fixed part of one user's report on one signal."""

    user_id: int
    locale: str
    timezone: str
    spec: SymbolSpec
    tf: Timeframe
    side: Side
    decision: ConsensusDecision
    account: AccountKind
    simulated: bool  # the account trades simulated prices (TradingService.simulated)

    def make(self, outcome: Outcome, *, key: str = "", **fields: Any) -> AutoReport:
        d = self.decision
        return AutoReport(
            key=key or f"autotrade:{self.user_id}:{self.spec.name}:{self.tf.value}:{d.time}",
            user_id=self.user_id, locale=self.locale, timezone=self.timezone, outcome=outcome, symbol=self.spec.name,
            timeframe=self.tf, side=self.side, bar_time=d.time, confidence=d.confidence, agreement=d.agreement,
            account=self.account, digits=self.spec.digits, simulated=self.simulated, **fields,
        )  # fmt: skip


def _details(report: AutoReport | None) -> dict[str, Any]:
    if report is None:
        return {}
    out: dict[str, Any] = {"volume": report.volume, "price": report.price, "sl": report.sl, "tp": report.tp,
                           "risk_pct": report.risk_pct, "order": report.order_id}  # fmt: skip
    if report.breach is not None:
        out["rule"] = report.breach.rule
    if report.reason:
        out["reason"] = report.reason
    if report.ticket is not None:
        out["ticket"] = report.ticket
    return {k: v for k, v in out.items() if v is not None}


def _floor_step(volume: float, step: float) -> float:
    decimals = max(0, min(10, -math.floor(math.log10(step)) + 2))
    return round(math.floor(volume / step + 1e-9) * step, decimals)


def _stops(side: Side, price: float, stop: float, digits: int) -> tuple[float, float]:
    """Stop loss at ``stop`` from the price (rounded toward it, so the loss never exceeds the sizing's budget)
    and take profit at ``TP_RATIO`` times that distance."""
    scale = 10**digits
    if side is Side.BUY:
        sl = math.ceil((price - stop) * scale - 1e-6) / scale
        tp = round(price + TP_RATIO * stop, digits)
    else:
        sl = math.floor((price + stop) * scale + 1e-6) / scale
        tp = round(price - TP_RATIO * stop, digits)
    return round(sl, digits), tp

