"""Auto-trading repository: per-user settings and the claimed signals.

A claim row is inserted (ON CONFLICT DO NOTHING on user, symbol, timeframe,
bar time) and committed before an auto order is previewed, so however often
the runner reports the same bar, on however many replicas, one order at most
goes out for it. Like every repository it never commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.db.models import AutoTradeRow, AutoTradeSettingsRow, TradingProfileRow
from domain.market.models import Timeframe
from domain.trading.autotrade import AutoSettings, AutoTradeRecord


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


def _settings(row: AutoTradeSettingsRow) -> AutoSettings:
    return AutoSettings(
        user_id=row.user_id,
        threshold=row.threshold,
        risk_pct=row.risk_pct,
        timeframe=Timeframe(row.timeframe),
        symbols=tuple(row.symbols),
        live_confirmed_at=row.live_confirmed_at,
    )


def _record(row: AutoTradeRow) -> AutoTradeRecord:
    return AutoTradeRecord(
        user_id=row.user_id,
        symbol=row.symbol,
        timeframe=row.timeframe,
        bar_time=row.bar_time,
        direction=row.direction,
        status=row.status,
        order_id=row.order_id,
        details=dict(row.details),
        created_at=row.created_at,
    )


class SqlAutoTradeRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    # ---- settings ----
    async def settings(self, user_id: int) -> AutoSettings | None:
        row = await self._s.get(AutoTradeSettingsRow, user_id, populate_existing=True)
        return _settings(row) if row is not None else None

    async def save(self, settings: AutoSettings, now: datetime) -> None:
        values = {
            "threshold": settings.threshold,
            "risk_pct": settings.risk_pct,
            "timeframe": settings.timeframe.value,
            "symbols": list(settings.symbols),
            "live_confirmed_at": settings.live_confirmed_at,
            "updated_at": now,
        }
        stmt = _insert(self._s)(AutoTradeSettingsRow).values(user_id=settings.user_id, **values)
        await self._s.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_=values))

    async def enabled(self) -> list[tuple[int, AutoSettings | None]]:
        """Every user with auto-trading switched on (kill switch not filtered), with their stored settings
        (None: never changed, the defaults apply)."""
        rows = await self._s.execute(
            select(TradingProfileRow.user_id, AutoTradeSettingsRow)
            .outerjoin(AutoTradeSettingsRow, AutoTradeSettingsRow.user_id == TradingProfileRow.user_id)
            .where(TradingProfileRow.auto_trading.is_(True))
            .order_by(TradingProfileRow.user_id)
        )
        return [(user_id, _settings(row) if row is not None else None) for user_id, row in rows.all()]

    # ---- claims ----
    async def claim(
        self, user_id: int, symbol: str, timeframe: Timeframe, bar_time: int, direction: str,
        details: dict[str, Any], now: datetime,
    ) -> bool:  # fmt: skip
        """Reserve this signal for this user; False when it was already claimed (by any process)."""
        stmt = (
            _insert(self._s)(AutoTradeRow)
            .values(
                user_id=user_id, symbol=symbol, timeframe=timeframe.value, bar_time=bar_time, direction=direction,
                status="claimed", order_id=None, details=details, created_at=now, updated_at=now,
            )  # fmt: skip
            .on_conflict_do_nothing(index_elements=["user_id", "symbol", "timeframe", "bar_time"])
        )
        return bool((await self._s.execute(stmt)).rowcount)

    async def finish(
        self, user_id: int, symbol: str, timeframe: Timeframe, bar_time: int, status: str, order_id: str | None,
        details: dict[str, Any], now: datetime,
    ) -> None:  # fmt: skip
        row = (
            await self._s.execute(
                select(AutoTradeRow).where(
                    AutoTradeRow.user_id == user_id, AutoTradeRow.symbol == symbol,
                    AutoTradeRow.timeframe == timeframe.value, AutoTradeRow.bar_time == bar_time,
                )  # fmt: skip
            )
        ).scalar_one()
        await self._s.execute(
            update(AutoTradeRow)
            .where(AutoTradeRow.id == row.id)
            .values(status=status, order_id=order_id, details={**row.details, **details}, updated_at=now)
            .execution_options(synchronize_session=False)
        )

    async def recent(self, user_id: int, limit: int = 5) -> Sequence[AutoTradeRecord]:
        rows = await self._s.execute(
            select(AutoTradeRow)
            .where(AutoTradeRow.user_id == user_id)
            .order_by(AutoTradeRow.created_at.desc(), AutoTradeRow.id.desc())
            .limit(limit)
        )
        return [_record(r) for r in rows.scalars()]
