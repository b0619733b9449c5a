"""The AI agents as a product: consensus on live bars, /ai analyses, the roster, signals and watchlists.

Bars come from the market hub; only CLOSED bars count (the last bar a gateway
returns may still be forming). Votes are computed once per (symbol,
timeframe, last closed bar) and cached; the consensus is re-weighted from the
persisted track records on every call, so it reflects the latest resolutions.

Tiers without ``ALL_AGENTS`` see ``BASIC_AGENTS`` (plus the Risk agent), and
their consensus is computed from those agents only.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from domain.agents.agents import Agent, default_agents
from domain.agents.consensus import (
    DEFAULT_DECAY,
    AgentStats,
    ConsensusConfig,
    ConsensusDecision,
    decide,
    prior_stats,
)
from domain.agents.indicators import IndicatorSet
from domain.agents.learning import DEFAULT_THRESHOLD_ATR, stats_map
from domain.agents.risk import RiskAgent, RiskVote
from domain.agents.series import Series
from domain.agents.votes import Vote
from domain.clock import utcnow
from domain.db.agents import StoredSignal
from domain.errors import InvalidInput, QuotaExceeded
from domain.market.models import Timeframe
from domain.metering import Claim, Meter
from domain.quotas import QuotaService
from domain.tiers import Feature, Quota, Tier, TierCatalog
from domain.trading.market import MarketHub
from domain.users import User

if TYPE_CHECKING:
    from domain.db.uow import UnitOfWork

log = logging.getLogger(__name__)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("UTC")

WINDOW = 500  # closed bars the agents read
DEFAULT_SYMBOL = "EURUSD"
DEFAULT_TIMEFRAME = Timeframe.H1
BASIC_AGENTS = ("trend", "momentum")  # what tiers without ALL_AGENTS see (with the Risk agent)
SIGNALS_PAGE = 8
WEIGHT_LOOKBACK = 7 * 86_400  # "how weights moved": over the last week of market time
ROSTER_SYMBOLS = 3
CACHE_SIZE = 256
HISTORY_LIMIT = 5000


class AiQuotaExceeded(QuotaExceeded):
    """The day's AI analyses are used up; params: limit, tier."""

    code = "AI-QUOTA"


class WatchlistFull(QuotaExceeded):
    """The watchlist holds the tier's maximum of symbols; params: limit, tier."""

    code = "AI-WATCHLIST-FULL"


class BadSignalsPage(InvalidInput):
    code = "AI-BAD-PAGE"


@dataclass(frozen=True, slots=True)
class Analysis:
    """What /ai shows: the consensus of the agents the tier unlocks, at the last closed bar."""

    symbol: str
    timeframe: Timeframe
    digits: int
    decision: ConsensusDecision
    limited: bool  # computed from BASIC_AGENTS only (the tier lacks ALL_AGENTS)
    locked: tuple[str, ...]  # agents left out for this tier
    errors: tuple[str, ...]  # agents that failed on this bar (left out)
    used: int  # analyses used today, this one included
    limit: int
    subscribed: bool
    renews_at: datetime  # when the day's analyses renew


@dataclass(frozen=True, slots=True)
class AgentLine:
    """One agent's record on one watched (symbol, timeframe), and how its weight moved."""

    symbol: str
    timeframe: str
    stats: AgentStats
    weight_before: float  # weight at the start of the lookback (or the prior's 0)
    updates: int  # resolved signals in the lookback

    @property
    def weight(self) -> float:
        return self.stats.weight

    @property
    def hit_rate(self) -> float | None:
        n = self.stats.hits + self.stats.misses
        return self.stats.hits / n if n else None


@dataclass(frozen=True, slots=True)
class RosterEntry:
    agent: str
    horizon: int
    unlocked: bool
    unlock_tier: str | None  # cheapest tier that unlocks it when locked
    health: str  # ok | warmup | error
    lines: tuple[AgentLine, ...]


@dataclass(frozen=True, slots=True)
class Roster:
    entries: tuple[RosterEntry, ...]
    risk_regime: str | None  # the Risk agent's regime on the first watched symbol
    risk_health: str
    watched: tuple[tuple[str, str], ...]  # (symbol, timeframe)


@dataclass(frozen=True, slots=True)
class SignalsPage:
    signals: tuple[StoredSignal, ...]
    symbol: str | None
    page: int
    pages: int
    total: int
    digits: dict[str, int]
    watchlist: tuple[str, ...]
    limit: int  # the tier's watchlist quota


@dataclass(frozen=True, slots=True)
class Computed:
    """Votes and the Risk view at one closed bar (cached)."""

    votes: tuple[Vote, ...]
    risk: RiskVote | None
    errors: tuple[str, ...]


class AgentService:
    def __init__(
        self,
        hub: MarketHub,
        tiers: TierCatalog,
        meter: Meter,
        *,
        agents: Sequence[Agent] | None = None,
        risk: RiskAgent | None = None,
        window: int = WINDOW,
        decay: float = DEFAULT_DECAY,
        threshold_atr: float = DEFAULT_THRESHOLD_ATR,
        config: ConsensusConfig = ConsensusConfig(),
    ) -> None:
        self.hub = hub
        self.tiers = tiers
        self.meter = meter
        self.quotas = QuotaService(meter)
        self.agents: tuple[Agent, ...] = tuple(agents) if agents is not None else default_agents()
        self.risk = risk or RiskAgent()
        self.window = window
        self.decay = decay
        self.threshold_atr = threshold_atr
        self.config = config
        self._cache: OrderedDict[tuple[str, str, int], Computed] = OrderedDict()

    # ---- time and bars ----
    def now(self) -> int:
        """Market time in epoch seconds: the terminal's clock (the sim clock in tests and backtests)."""
        return int(self.hub.terminal.clock()) // 1000

    def now_dt(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    async def closed_series(self, symbol: str, tf: Timeframe, count: int | None = None) -> Series:
        """The last ``count`` (default: the window) CLOSED bars of ``symbol``; a forming bar is dropped."""
        n = count or self.window
        bars = await self.hub.bars(symbol, tf, n + 1)
        now = self.now()
        closed = [b for b in bars if b.time + tf.seconds <= now][-n:]
        return Series.from_bars(closed, symbol=symbol, timeframe=tf)

    # ---- votes and consensus ----
    def compute(self, series: Series) -> Computed:
        """Every agent's vote and the Risk view at the series' last bar; one failing agent is left out."""
        tf = series.timeframe.value if series.timeframe is not None else ""
        key = (series.symbol, tf, int(series.time[-1]) if len(series) else 0)
        hit = self._cache.get(key)
        if hit is not None and len(series) >= self.window:
            self._cache.move_to_end(key)
            return hit
        votes: list[Vote] = []
        errors: list[str] = []
        risk: RiskVote | None = None
        if len(series):
            ind = IndicatorSet(series)
            for agent in self.agents:
                try:
                    votes.append(agent.vote(series, ind))
                except Exception:
                    log.exception("agent %s failed on %s %s", agent.name, series.symbol, tf)
                    errors.append(agent.name)
            try:
                risk = self.risk.assess(series, ind=ind)
            except Exception:
                log.exception("risk agent failed on %s %s", series.symbol, tf)
                errors.append(self.risk.name)
        out = Computed(tuple(votes), risk, tuple(errors))
        if len(series) >= self.window:  # a short (catch-up or young) window is not the canonical one
            self._cache[key] = out
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return out

    def decide(
        self, computed: Computed, stats: dict[str, AgentStats], agents: Sequence[str] | None = None
    ) -> ConsensusDecision:
        votes = [v for v in computed.votes if agents is None or v.agent in agents]
        return decide(votes, stats, computed.risk, self.config)

    async def consensus(self, uow: UnitOfWork, symbol: str, tf: Timeframe) -> ConsensusDecision:
        """The consensus of all agents at the last closed bar, weighted by the persisted track records.

        Raises ``SymbolNotFound`` (with suggestions) for an unknown symbol.
        """
        spec = await self.hub.resolve(symbol)
        series = await self.closed_series(spec.name, tf)
        return self.decide(self.compute(series), await stats_map(uow.agents, spec.name, tf.value))

    def visible_agents(self, tier: Tier) -> tuple[str, ...]:
        names = tuple(a.name for a in self.agents)
        return names if tier.has(Feature.ALL_AGENTS) else tuple(n for n in names if n in BASIC_AGENTS)

    # ---- /ai ----
    async def claim(self, user: User, tier: Tier) -> Claim:
        """One AI analysis of the user's daily quota (Quota.AI_PER_DAY per UTC day): /ai, or a dashboard panel
        computing the consensus. Raises :class:`AiQuotaExceeded` (with when it renews, in the user's time)."""
        limit = tier.quota(Quota.AI_PER_DAY)
        claim = await self.quotas.claim_ai(user.id, limit)
        if claim is None:
            upgrade = next((t for t in self.tiers if t.quota(Quota.AI_PER_DAY) > limit), None)
            renews = self.quotas.renews_at().astimezone(_zone(user.timezone)).strftime("%H:%M")
            raise AiQuotaExceeded(
                "ai analyses used up", limit=limit, tier=upgrade.code if upgrade else tier.code, renews=renews
            )
        return claim

    async def analyse(self, uow: UnitOfWork, user: User, tier: Tier, symbol: str, tf: Timeframe) -> Analysis:
        """One metered analysis (see :meth:`claim`) of ``symbol`` on ``tf``."""
        spec = await self.hub.resolve(symbol)
        claim = await self.claim(user, tier)
        limit = tier.quota(Quota.AI_PER_DAY)
        try:
            self.hub.watch([spec.name])
            series = await self.closed_series(spec.name, tf)
            computed = self.compute(series)
            visible = self.visible_agents(tier)
            stats = await stats_map(uow.agents, spec.name, tf.value)
            decision = self.decide(computed, stats, visible)
            subscribed = spec.name in await uow.agents.subscriptions(user.id)
        except BaseException:
            await self.meter.refund(claim)  # a failed analysis costs nothing
            raise
        return Analysis(
            symbol=spec.name, timeframe=tf, digits=spec.digits, decision=decision,
            limited=not tier.has(Feature.ALL_AGENTS),
            locked=tuple(a.name for a in self.agents if a.name not in visible),
            errors=computed.errors, used=claim.used, limit=limit, subscribed=subscribed,
            renews_at=self.quotas.renews_at(),
        )  # fmt: skip

    # ---- /agents ----
    async def roster(self, uow: UnitOfWork, user: User, tier: Tier) -> Roster:
        """Each agent's health and, per watched (symbol, timeframe), hit rate, weight and its recent move."""
        symbols = (await uow.agents.subscriptions(user.id))[:ROSTER_SYMBOLS] or [DEFAULT_SYMBOL]
        tf = DEFAULT_TIMEFRAME
        watched = tuple((s, tf.value) for s in symbols)
        computed: Computed | None = None
        try:
            computed = self.compute(await self.closed_series(symbols[0], tf))
        except Exception:  # the roster still shows the records when the market is unreachable
            log.warning("roster: no bars for %s", symbols[0], exc_info=True)
        since = self.now() - WEIGHT_LOOKBACK
        per_symbol: dict[str, dict[str, AgentStats]] = {}
        moved: dict[tuple[str, str], tuple[float, int]] = {}  # (symbol, agent) -> (weight at `since`, updates)
        for symbol in symbols:
            per_symbol[symbol] = await stats_map(uow.agents, symbol, tf.value)
            for point in await uow.agents.history(symbol, tf.value, limit=HISTORY_LIMIT):
                before, n = moved.get((symbol, point.agent), (prior_stats(point.agent, symbol, tf.value).weight, 0))
                if point.time < since:
                    moved[(symbol, point.agent)] = (point.stats().weight, 0)
                else:
                    moved[(symbol, point.agent)] = (before, n + 1)
        visible = set(self.visible_agents(tier))
        unlock = self.tiers.required_for(min_tier=None, feature=Feature.ALL_AGENTS)
        entries = []
        for agent in self.agents:
            health = "ok"
            if computed is not None:
                if agent.name in computed.errors:
                    health = "error"
                else:
                    vote = next((v for v in computed.votes if v.agent == agent.name), None)
                    if vote is not None and vote.rationale_key.endswith(".warmup"):
                        health = "warmup"
            lines = []
            for symbol in symbols:
                stats = per_symbol[symbol].get(agent.name) or prior_stats(agent.name, symbol, tf.value)
                before, n = moved.get((symbol, agent.name), (stats.weight, 0))
                lines.append(AgentLine(symbol, tf.value, stats, before, n))
            entries.append(
                RosterEntry(agent.name, agent.horizon, agent.name in visible,
                            None if agent.name in visible or unlock is None else unlock.code, health, tuple(lines))
            )  # fmt: skip
        risk_health = "ok"
        regime = None
        if computed is not None:
            if self.risk.name in computed.errors:
                risk_health = "error"
            elif computed.risk is not None:
                regime = computed.risk.regime
                risk_health = "warmup" if regime == "warmup" else "ok"
        return Roster(tuple(entries), regime, risk_health, watched)

    # ---- /signals and the watchlist ----
    async def signals(
        self, uow: UnitOfWork, user: User, tier: Tier, symbol: str | None = None, page: int = 0
    ) -> SignalsPage:
        """Recent consensus signals (newest first), optionally for one symbol; raises SymbolNotFound."""
        if page < 0:
            raise BadSignalsPage("bad page")
        name = (await self.hub.resolve(symbol)).name if symbol else None
        total = await uow.agents.count_signals(name)
        pages = max(1, math.ceil(total / SIGNALS_PAGE))
        page = min(page, pages - 1)
        rows = await uow.agents.recent_signals(name, None, SIGNALS_PAGE, offset=page * SIGNALS_PAGE)
        digits = {s: await self.hub.digits(s) for s in {r.symbol for r in rows}}
        watchlist = tuple(await uow.agents.subscriptions(user.id))
        return SignalsPage(tuple(rows), name, page, pages, total, digits, watchlist, tier.quota(Quota.WATCHLIST))

    async def subscribe(self, uow: UnitOfWork, user: User, tier: Tier, symbol: str) -> str:
        """Put ``symbol`` on the user's watchlist (its signals reach them); returns the symbol's name."""
        spec = await self.hub.resolve(symbol)
        current = await uow.agents.subscriptions(user.id)
        if spec.name in current:
            return spec.name
        limit = tier.quota(Quota.WATCHLIST)
        if len(current) >= limit:
            upgrade = next((t for t in self.tiers if t.quota(Quota.WATCHLIST) > limit), None)
            raise WatchlistFull("watchlist full", limit=limit, tier=upgrade.code if upgrade else tier.code)
        await uow.agents.subscribe(user.id, spec.name, utcnow())
        await uow.commit()
        self.hub.watch([spec.name])
        return spec.name

    async def unsubscribe(self, uow: UnitOfWork, user: User, symbol: str) -> bool:
        """Take ``symbol`` off the watchlist; False when it was not on it (nothing changes)."""
        removed = await uow.agents.unsubscribe(user.id, symbol.strip().upper()[:32])
        await uow.commit()
        return removed

    async def count_watchlist(self, uow: UnitOfWork, user_id: int) -> int:
        return await uow.agents.count_subscriptions(user_id)
