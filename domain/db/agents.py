"""Persistence of the AI agents: track records (and their history), signals, watchlists, digests.

``SqlAgentRepository`` satisfies :class:`domain.agents.learning.StatsRepository`
(``get``/``put``/``list_for``); every ``put`` also appends the new stats to the
history, which is what "how weights moved" reads. Like every repository it
never commits: the use case does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.agents.consensus import AgentStats
from domain.db.models import (
    AgentProgressRow,
    AgentSignalRow,
    AgentStatsHistoryRow,
    AgentStatsRow,
    AgentVoteRow,
    SignalDigestRow,
    SignalSubscriptionRow,
)

PENDING, HIT, MISS = "pending", "hit", "miss"
CONSENSUS = "consensus"  # the agent name under which the consensus's own signals are stored


@dataclass(frozen=True, slots=True)
class StoredSignal:
    """A signal as stored: what was called, and (once resolved) how it went."""

    id: int
    agent: str
    symbol: str
    timeframe: str
    direction: str  # buy | sell
    time: int  # open time of the signal bar (epoch seconds); entry is that bar's close
    entry: float
    atr: float
    horizon: int
    confidence: float
    status: str  # pending | hit | miss
    move: float | None = None
    move_atr: float | None = None
    resolved_at: int | None = None


@dataclass(frozen=True, slots=True)
class StatsPoint:
    """The stats of one agent after one update."""

    agent: str
    symbol: str
    timeframe: str
    alpha: float
    beta: float
    hits: int
    misses: int
    time: int

    def stats(self) -> AgentStats:
        return AgentStats(self.agent, self.symbol, self.timeframe, self.alpha, self.beta, self.hits, self.misses,
                          self.time)  # fmt: skip


@dataclass(frozen=True, slots=True)
class StoredVote:
    """One agent's vote (or the consensus, agent ``consensus``) at one bar, and the weight it carried."""

    agent: str
    time: int  # open time of the bar voted on
    direction: str  # buy | sell | flat
    confidence: float
    weight: float | None


def _stats(row: AgentStatsRow) -> AgentStats:
    return AgentStats(row.agent, row.symbol, row.timeframe, row.alpha, row.beta, row.hits, row.misses, row.last_update)


def _signal(row: AgentSignalRow) -> StoredSignal:
    return StoredSignal(
        row.id, row.agent, row.symbol, row.timeframe, row.direction, row.time, row.entry, row.atr, row.horizon,
        row.confidence, row.status, row.move, row.move_atr, row.resolved_at,
    )  # fmt: skip


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


class SqlAgentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    def _insert(self) -> Any:
        return pg_insert if self._s.bind.dialect.name == "postgresql" else sqlite_insert

    # ---- track records (domain.agents.learning.StatsRepository) ----
    async def get(self, agent: str, symbol: str, timeframe: str) -> AgentStats | None:
        row = await self._s.get(AgentStatsRow, (agent, symbol, timeframe))
        return _stats(row) if row is not None else None

    async def put(self, stats: AgentStats) -> None:
        values = {
            "alpha": stats.alpha, "beta": stats.beta, "hits": stats.hits, "misses": stats.misses,
            "last_update": stats.last_update,
        }  # fmt: skip
        stmt = self._insert()(AgentStatsRow).values(
            agent=stats.agent, symbol=stats.symbol, timeframe=stats.timeframe, **values
        )
        await self._s.execute(stmt.on_conflict_do_update(index_elements=["agent", "symbol", "timeframe"], set_=values))
        self._s.add(
            AgentStatsHistoryRow(agent=stats.agent, symbol=stats.symbol, timeframe=stats.timeframe,
                                 time=stats.last_update, **{k: v for k, v in values.items() if k != "last_update"})
        )  # fmt: skip
        await self._s.flush()

    async def list_for(self, symbol: str, timeframe: str) -> list[AgentStats]:
        rows = await self._s.scalars(
            select(AgentStatsRow)
            .where(AgentStatsRow.symbol == symbol, AgentStatsRow.timeframe == timeframe)
            .order_by(AgentStatsRow.agent)
        )
        return [_stats(r) for r in rows]

    async def history(
        self, symbol: str, timeframe: str, *, since: int | None = None, limit: int = 1000
    ) -> list[StatsPoint]:
        """Stats after each update on (symbol, timeframe), oldest first (the newest ``limit``)."""
        q = select(AgentStatsHistoryRow).where(
            AgentStatsHistoryRow.symbol == symbol, AgentStatsHistoryRow.timeframe == timeframe
        )
        if since is not None:
            q = q.where(AgentStatsHistoryRow.time >= since)
        rows = await self._s.scalars(q.order_by(AgentStatsHistoryRow.id.desc()).limit(limit))
        return [
            StatsPoint(r.agent, r.symbol, r.timeframe, r.alpha, r.beta, r.hits, r.misses, r.time)
            for r in reversed(list(rows))
        ]

    # ---- votes per bar (the consensus history) ----
    async def add_votes(self, symbol: str, timeframe: str, time: int, votes: Sequence[StoredVote]) -> None:
        """Store one bar's votes; a rerun of the same bar changes nothing."""
        if not votes:
            return
        rows = [
            {"symbol": symbol, "timeframe": timeframe, "time": time, "agent": v.agent, "direction": v.direction,
             "confidence": _finite(v.confidence) or 0.0, "weight": _finite(v.weight)}
            for v in votes
        ]  # fmt: skip
        stmt = self._insert()(AgentVoteRow).values(rows)
        await self._s.execute(stmt.on_conflict_do_nothing(index_elements=["symbol", "timeframe", "time", "agent"]))

    async def vote_history(self, symbol: str, timeframe: str, bars: int) -> list[StoredVote]:
        """The votes of the last ``bars`` processed bars of (symbol, timeframe), oldest first."""
        times = select(AgentVoteRow.time).where(AgentVoteRow.symbol == symbol, AgentVoteRow.timeframe == timeframe)
        cut = await self._s.scalar(
            times.distinct().order_by(AgentVoteRow.time.desc()).offset(max(0, bars - 1)).limit(1)
        )
        q = select(AgentVoteRow).where(AgentVoteRow.symbol == symbol, AgentVoteRow.timeframe == timeframe)
        if cut is not None:
            q = q.where(AgentVoteRow.time >= cut)
        rows = await self._s.scalars(q.order_by(AgentVoteRow.time, AgentVoteRow.agent))
        return [StoredVote(r.agent, r.time, r.direction, r.confidence, r.weight) for r in rows]

    # ---- signals ----
    async def add_signal(
        self, agent: str, symbol: str, timeframe: str, direction: str, time: int, entry: float, atr: float,
        horizon: int, confidence: float,
    ) -> bool:  # fmt: skip
        """Store a signal unless it is already stored (a rerun); True when this call stored it."""
        stmt = self._insert()(AgentSignalRow).values(
            agent=agent, symbol=symbol, timeframe=timeframe, direction=direction, time=time, entry=entry,
            atr=_finite(atr) or 0.0, horizon=horizon, confidence=confidence, status=PENDING,
        )  # fmt: skip
        result = await self._s.execute(
            stmt.on_conflict_do_nothing(index_elements=["agent", "symbol", "timeframe", "time"])
        )
        return bool(result.rowcount)

    async def pending_signals(self, symbol: str, timeframe: str) -> list[StoredSignal]:
        rows = await self._s.scalars(
            select(AgentSignalRow)
            .where(AgentSignalRow.symbol == symbol, AgentSignalRow.timeframe == timeframe,
                   AgentSignalRow.status == PENDING)
            .order_by(AgentSignalRow.time, AgentSignalRow.id)
        )  # fmt: skip
        return [_signal(r) for r in rows]

    async def resolve_signal(self, signal_id: int, hit: bool, move: float, move_atr: float, resolved_at: int) -> bool:
        """Mark a pending signal hit or miss; False when it was no longer pending (resolved elsewhere)."""
        result = await self._s.execute(
            update(AgentSignalRow)
            .where(AgentSignalRow.id == signal_id, AgentSignalRow.status == PENDING)
            .values(status=HIT if hit else MISS, move=_finite(move), move_atr=_finite(move_atr),
                    resolved_at=resolved_at)
        )  # fmt: skip
        return bool(result.rowcount)

    def _filtered(self, q: Any, symbol: str | None, timeframe: str | None, agent: str | None,
                  since: int | None) -> Any:  # fmt: skip
        if symbol is not None:
            q = q.where(AgentSignalRow.symbol == symbol)
        if timeframe is not None:
            q = q.where(AgentSignalRow.timeframe == timeframe)
        if agent is not None:
            q = q.where(AgentSignalRow.agent == agent)
        if since is not None:
            q = q.where(AgentSignalRow.time >= since)
        return q

    async def recent_signals(
        self, symbol: str | None = None, timeframe: str | None = None, limit: int = 10, *, offset: int = 0,
        agent: str | None = CONSENSUS, since: int | None = None,
    ) -> list[StoredSignal]:  # fmt: skip
        """Newest first; ``agent=None`` lists every agent's signals, the default only the consensus's."""
        q = self._filtered(select(AgentSignalRow), symbol, timeframe, agent, since)
        rows = await self._s.scalars(
            q.order_by(AgentSignalRow.time.desc(), AgentSignalRow.id.desc()).offset(offset).limit(limit)
        )
        return [_signal(r) for r in rows]

    async def count_signals(
        self, symbol: str | None = None, timeframe: str | None = None, *, agent: str | None = CONSENSUS,
        since: int | None = None,
    ) -> int:  # fmt: skip
        q = self._filtered(select(func.count()).select_from(AgentSignalRow), symbol, timeframe, agent, since)
        return int(await self._s.scalar(q) or 0)

    async def top_signals(self, symbols: Sequence[str], since: int, limit: int = 5) -> list[StoredSignal]:
        """The most confident consensus signals on ``symbols`` since ``since`` (the digest)."""
        if not symbols:
            return []
        rows = await self._s.scalars(
            select(AgentSignalRow)
            .where(AgentSignalRow.agent == CONSENSUS, AgentSignalRow.symbol.in_(list(symbols)),
                   AgentSignalRow.time >= since)
            .order_by(AgentSignalRow.confidence.desc(), AgentSignalRow.time.desc())
            .limit(limit)
        )  # fmt: skip
        return [_signal(r) for r in rows]

    # ---- watchlists (signal subscriptions) ----
    async def subscribe(self, user_id: int, symbol: str, now: datetime) -> bool:
        """True when newly subscribed, False when it already was."""
        stmt = self._insert()(SignalSubscriptionRow).values(user_id=user_id, symbol=symbol, created_at=now)
        result = await self._s.execute(stmt.on_conflict_do_nothing(index_elements=["user_id", "symbol"]))
        return bool(result.rowcount)

    async def unsubscribe(self, user_id: int, symbol: str) -> bool:
        result = await self._s.execute(
            delete(SignalSubscriptionRow).where(
                SignalSubscriptionRow.user_id == user_id, SignalSubscriptionRow.symbol == symbol
            )
        )
        return bool(result.rowcount)

    async def subscriptions(self, user_id: int) -> list[str]:
        rows = await self._s.scalars(
            select(SignalSubscriptionRow.symbol)
            .where(SignalSubscriptionRow.user_id == user_id)
            .order_by(SignalSubscriptionRow.created_at, SignalSubscriptionRow.symbol)
        )
        return list(rows)

    async def count_subscriptions(self, user_id: int) -> int:
        q = select(func.count()).select_from(SignalSubscriptionRow).where(SignalSubscriptionRow.user_id == user_id)
        return int(await self._s.scalar(q) or 0)

    async def subscribers(self, symbol: str) -> list[int]:
        rows = await self._s.scalars(
            select(SignalSubscriptionRow.user_id)
            .where(SignalSubscriptionRow.symbol == symbol)
            .order_by(SignalSubscriptionRow.user_id)
        )
        return list(rows)

    async def subscribed_symbols(self) -> set[str]:
        return set(await self._s.scalars(select(SignalSubscriptionRow.symbol).distinct()))

    async def watchlists(self) -> dict[int, list[str]]:
        """Every subscriber's symbols (the digest's audience)."""
        rows = await self._s.execute(
            select(SignalSubscriptionRow.user_id, SignalSubscriptionRow.symbol).order_by(
                SignalSubscriptionRow.user_id, SignalSubscriptionRow.symbol
            )
        )
        out: dict[int, list[str]] = {}
        for user_id, symbol in rows:
            out.setdefault(int(user_id), []).append(symbol)
        return out

    # ---- runner progress ----
    async def last_bar(self, symbol: str, timeframe: str) -> int | None:
        row = await self._s.get(AgentProgressRow, (symbol, timeframe))
        return row.last_bar if row is not None else None

    async def claim_bar(self, symbol: str, timeframe: str, bar_time: int) -> bool:
        """Advance the progress mark to ``bar_time``; False when it is already there or beyond (another
        pass, replica or the run before a restart processed this bar)."""
        stmt = self._insert()(AgentProgressRow).values(symbol=symbol, timeframe=timeframe, last_bar=bar_time)
        inserted = await self._s.execute(stmt.on_conflict_do_nothing(index_elements=["symbol", "timeframe"]))
        if inserted.rowcount:
            return True
        result = await self._s.execute(
            update(AgentProgressRow)
            .where(AgentProgressRow.symbol == symbol, AgentProgressRow.timeframe == timeframe,
                   AgentProgressRow.last_bar < bar_time)
            .values(last_bar=bar_time)
        )  # fmt: skip
        return bool(result.rowcount)

    # ---- daily digest bookkeeping ----
    async def last_digest_day(self, user_id: int) -> str | None:
        row = await self._s.get(SignalDigestRow, user_id)
        return row.local_day if row is not None else None

    async def mark_digest(self, user_id: int, local_day: str, now: datetime) -> None:
        values = {"local_day": local_day, "sent_at": now}
        stmt = self._insert()(SignalDigestRow).values(user_id=user_id, **values)
        await self._s.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_=values))
