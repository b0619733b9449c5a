"""The agent runner: on each closed bar of every watched symbol, votes, consensus, signals, learning.

Per (symbol, timeframe) and per bar that closed since the last pass, in one
transaction: claim the bar (a progress mark, so a rerun, a restart or a second
replica never processes it twice), resolve the pending signals whose horizon
has passed (hit when the close moved at least ``threshold_atr`` ATR their
way) and fold them into the agents' track records, compute the votes and the
consensus with the updated weights, store the non-flat votes and the
consensus as signals. After the commit: the listeners (auto-trading) are
awaited, then subscribers are notified -- in real time for tiers with
``REALTIME_SIGNALS``, else once per user-local day as a digest of the top
signals (``SIGNALS_DIGEST``).

Universe: ``DEFAULT_UNIVERSE`` ∪ symbols on users' watchlists ∪ providers.

With Redis (``partition``: workers/partition.py AgentJobs) the worker
processes split the (symbol, timeframe) jobs of each pass through a Redis
Streams consumer group, and a dead worker's jobs are taken over by another;
without it ``run_forever`` runs every pass here (``run_once``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
from aiogram import Dispatcher
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.notify import Notifier
from bot.views.agents import digest_view, realtime_signal_view
from domain.agents.consensus import ConsensusDecision
from domain.agents.learning import Signal, record_resolution, resolve, stats_map
from domain.agents.series import Series
from domain.agents.service import AgentService
from domain.agents.votes import Direction
from domain.db.agents import CONSENSUS, StoredSignal, StoredVote
from domain.clock import utcnow
from domain.db.uow import UnitOfWork
from domain.market.models import Timeframe
from domain.tiers import Feature, Quota, TierCatalog
from domain.trading.models import MarketUnavailable, NoQuote, SymbolNotFound
from domain.users import Notify

if TYPE_CHECKING:
    from workers.partition import AgentJobs

log = logging.getLogger(__name__)

DEFAULT_UNIVERSE = ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD")
DEFAULT_TIMEFRAMES = (Timeframe.H1,)
MAX_CATCH_UP = 24  # bars processed per (symbol, tf) and pass after a pause; older ones are skipped
DIGEST_HOUR = 8  # user-local hour from which the day's digest may go
DIGEST_SIZE = 5
RUN_EVERY = 30.0  # seconds between passes

Listener = Callable[[str, Timeframe, ConsensusDecision], Awaitable[None]]
SymbolProvider = Callable[[], Awaitable[set[str]]]
NotifierSource = Callable[[], Notifier | None]


class AgentRunner:
    def __init__(
        self,
        service: AgentService,
        sessionmaker: async_sessionmaker[AsyncSession],
        tiers: TierCatalog,
        i18n: I18n,
        notifier: NotifierSource = lambda: None,
        *,
        universe: Iterable[str] = DEFAULT_UNIVERSE,
        timeframes: Iterable[Timeframe] = DEFAULT_TIMEFRAMES,
        interval: float = RUN_EVERY,
        partition: AgentJobs | None = None,
    ) -> None:
        self.service = service
        self._sessionmaker = sessionmaker
        self._tiers = tiers
        self._i18n = i18n
        self._notifier = notifier
        self.universe = tuple(universe)
        self.timeframes = tuple(timeframes)
        self.interval = interval
        self.partition = partition
        self._listeners: list[Listener] = []
        self._providers: list[SymbolProvider] = []
        self.processed = 0  # bars processed since start
        self.last_error: str | None = None  # the last (symbol, tf) that failed, for logs and tests

    # ---- extension points ----
    def add_listener(self, cb: Listener) -> None:
        """``await cb(symbol, tf, decision)`` after each processed bar close (after the commit)."""
        self._listeners.append(cb)

    def add_symbols(self, provider: SymbolProvider) -> None:
        """``await provider()`` returns more symbols to watch on every pass."""
        self._providers.append(provider)

    def install(self, dp: Dispatcher) -> None:
        """Report the watchlist's size to /status (Quota.WATCHLIST)."""
        quotas = dp.workflow_data.get("quotas")
        if quotas is not None:
            quotas.register(Quota.WATCHLIST, self.count_watchlist)

    async def count_watchlist(self, user_id: int) -> int:
        async with UnitOfWork(self._sessionmaker) as uow:
            return await uow.agents.count_subscriptions(user_id)

    # ---- passes ----
    async def symbols(self) -> list[str]:
        found: set[str] = set(self.universe)
        async with UnitOfWork(self._sessionmaker) as uow:
            found |= await uow.agents.subscribed_symbols()
        for provider in self._providers:
            try:
                found |= {s.upper() for s in await provider()}
            except Exception:
                log.exception("agent runner: a symbol provider failed")
        return sorted(found)

    async def pairs(self) -> list[tuple[str, Timeframe]]:
        """This pass's jobs: every (symbol, timeframe)."""
        return [(symbol, tf) for symbol in await self.symbols() for tf in self.timeframes]

    async def process(self, symbol: str, tf: Timeframe) -> int:
        """Every bar of (symbol, tf) that closed since it was last processed; failures are logged."""
        try:
            done = await self._process(symbol, tf)
        except (SymbolNotFound, NoQuote, MarketUnavailable) as exc:
            log.info("agent runner: skipping %s %s (%s)", symbol, tf.value, type(exc).__name__)
            return 0
        except Exception as exc:
            self.last_error = f"{symbol} {tf.value}: {type(exc).__name__}"
            log.exception("agent runner failed on %s %s", symbol, tf.value)
            return 0
        self.processed += done
        return done

    async def run_once(self) -> int:
        """Process every bar that closed since the last pass; returns how many (symbol, tf, bar) were processed."""
        done = 0
        for symbol, tf in await self.pairs():
            done += await self.process(symbol, tf)
        try:
            await self.send_digests()
        except Exception:
            log.exception("agent runner: digests failed")
        return done

    async def run_forever(self) -> None:
        if self.partition is not None:  # the jobs are split among the worker processes
            await self.partition.run(self)
            return
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("agent runner pass failed; retrying next round")
            await asyncio.sleep(self.interval)

    # ---- one (symbol, timeframe) ----
    async def _process(self, symbol: str, tf: Timeframe) -> int:
        spec = await self.service.hub.resolve(symbol)
        name = spec.name
        series = await self.service.closed_series(name, tf, self.service.window + MAX_CATCH_UP)
        if len(series) == 0:
            return 0
        async with UnitOfWork(self._sessionmaker) as uow:
            last = await uow.agents.last_bar(name, tf.value)
        times = series.time
        if last is None:
            todo = [len(series) - 1]  # a new symbol starts at its latest closed bar
        else:
            todo = [int(i) for i in np.flatnonzero(times > last)][-MAX_CATCH_UP:]
        count = 0
        for i in todo:
            window = series[max(0, i + 1 - self.service.window) : i + 1]
            outcome = await self._bar(name, tf, window)
            if outcome is None:
                continue
            count += 1
            decision, fresh = outcome
            for listener in self._listeners:
                try:
                    await listener(name, tf, decision)
                except Exception:
                    log.exception("agent runner: a listener failed on %s %s", name, tf.value)
            if fresh is not None:
                await self._notify_realtime(fresh, decision)
        return count

    async def _bar(self, symbol: str, tf: Timeframe, window: Series) -> tuple[ConsensusDecision, StoredSignal | None] | None:
        """Claim, learn, decide and store one closed bar; None when it was already processed."""
        bar_time = int(window.time[-1])
        svc = self.service
        async with UnitOfWork(self._sessionmaker) as uow:
            repo = uow.agents
            if not await repo.claim_bar(symbol, tf.value, bar_time):
                await uow.rollback()
                return None
            for pending in await repo.pending_signals(symbol, tf.value):
                if pending.time < int(window.time[0]):  # its bars left the window (a long outage): cannot judge
                    continue
                sig = Signal(pending.agent, symbol, tf.value, Direction(pending.direction), pending.time,
                             pending.entry, pending.atr, pending.horizon)  # fmt: skip
                res = resolve(sig, window, svc.threshold_atr)
                if res is None:
                    continue
                if await repo.resolve_signal(pending.id, res.hit, res.move, res.move_atr, res.exit_time):
                    await record_resolution(repo, res, svc.decay)
            computed = svc.compute(window)
            decision = svc.decide(computed, await stats_map(repo, symbol, tf.value))
            # every vote of this bar, flat ones too, with the weight it carried: the consensus history
            await repo.add_votes(symbol, tf.value, bar_time, [
                *(StoredVote(w.vote.agent, bar_time, w.vote.direction.value, w.vote.confidence, w.weight)
                  for w in decision.votes),
                StoredVote(CONSENSUS, bar_time, decision.direction.value, decision.confidence, None),
            ])  # fmt: skip
            for vote in computed.votes:
                if vote.direction is not Direction.FLAT:
                    await repo.add_signal(vote.agent, symbol, tf.value, vote.direction.value, vote.time, vote.price,
                                          vote.atr, vote.horizon, vote.confidence)  # fmt: skip
            fresh: StoredSignal | None = None
            if decision.direction is not Direction.FLAT:
                stored = await repo.add_signal(
                    CONSENSUS, symbol, tf.value, decision.direction.value, decision.time, decision.price,
                    decision.atr, decision.horizon, decision.confidence,
                )  # fmt: skip
                latest = await repo.recent_signals(symbol, tf.value, 2, since=decision.time - tf.seconds)
                # subscribers hear of a new call, not of the same call repeated bar after bar
                repeated = len(latest) > 1 and latest[1].direction == decision.direction.value
                if stored and not repeated:
                    fresh = latest[0]
            await uow.commit()
        return decision, fresh

    # ---- notifications ----
    async def _notify_realtime(self, signal: StoredSignal, decision: ConsensusDecision) -> None:
        notifier = self._notifier()
        if notifier is None:
            return
        now = utcnow()  # plans expire in wall-clock time
        async with UnitOfWork(self._sessionmaker) as uow:
            users = [await uow.users.get(uid) for uid in await uow.agents.subscribers(signal.symbol)]
        digits = await self.service.hub.digits(signal.symbol)
        for user in users:
            if user is None or not user.wants(Notify.SIGNALS):
                continue
            tier = self._tiers.get(user.effective_tier(now))
            if not tier.has(Feature.REALTIME_SIGNALS):
                continue
            with self._i18n.context(), self._i18n.use_locale(user.locale):
                text, markup = realtime_signal_view(signal, decision, digits, user.timezone)
            key = f"agents:signal:{user.id}:{signal.symbol}:{signal.timeframe}:{signal.time}"
            await notifier.send(user.id, text, markup, key=key)

    async def send_digests(self) -> int:
        """The daily digest for subscribers without real-time signals; at most once per user-local day."""
        notifier = self._notifier()
        if notifier is None:
            return 0
        now = self.service.now_dt()
        since = self.service.now() - 86_400
        sent = 0
        async with UnitOfWork(self._sessionmaker) as uow:
            watchlists = await uow.agents.watchlists()
        for user_id, symbols in watchlists.items():
            async with UnitOfWork(self._sessionmaker) as uow:
                user = await uow.users.get(user_id)
                if user is None or not user.wants(Notify.DIGEST):
                    continue
                tier = self._tiers.get(user.effective_tier(utcnow()))
                if tier.has(Feature.REALTIME_SIGNALS) or not tier.has(Feature.SIGNALS_DIGEST):
                    continue
                local = now.astimezone(ZoneInfo(user.timezone))
                day = local.date().isoformat()
                if local.hour < DIGEST_HOUR or await uow.agents.last_digest_day(user_id) == day:
                    continue
                top = await uow.agents.top_signals(symbols, since, DIGEST_SIZE)
                if not top:
                    continue
                digits = {s: await self.service.hub.digits(s) for s in {t.symbol for t in top}}
                with self._i18n.context(), self._i18n.use_locale(user.locale):
                    text, markup = digest_view(top, digits, user.timezone)
                if await notifier.send(user_id, text, markup, key=f"agents:digest:{user_id}:{day}"):
                    await uow.agents.mark_digest(user_id, day, now)
                    await uow.commit()
                    sent += 1
        return sent
