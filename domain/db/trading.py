"""Trading repositories: accounts, profiles, orders, alerts, the simulated terminal's demo accounts.

Like the other repositories they never commit, except :class:`SqlAlertStore`
(the evaluator's repository) and :class:`SqlDemoStore`, which run their own short transactions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.alerts.models import AlertKind, AlertRule, AlertStatus
from domain.db.models import (
    AlertRow,
    OrderRow,
    SimAccountRow,
    SimDealRow,
    SimSequenceRow,
    TradingAccountRow,
    TradingProfileRow,
)
from domain.trading.crypto import SecretBox
from domain.trading.models import (
    AccountKind,
    LinkedAccount,
    Order,
    OrderKind,
    OrderStatus,
    RiskLimits,
    TradingProfile,
)

LIVE_STATUSES = (AlertStatus.ACTIVE.value, AlertStatus.PAUSED.value)


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.bind.dialect.name == "postgresql" else sqlite_insert


class SqlTradingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    # ---- accounts ----
    async def account(self, user_id: int, kind: AccountKind) -> tuple[LinkedAccount, str | None] | None:
        row = (
            await self._s.execute(
                select(TradingAccountRow).where(
                    TradingAccountRow.user_id == user_id, TradingAccountRow.kind == kind.value
                )
            )
        ).scalar_one_or_none()
        if row is None:
            return None
        return LinkedAccount(row.user_id, AccountKind(row.kind), row.login, row.server), row.password_enc

    async def add_account(self, account: LinkedAccount, password_enc: str | None, now: datetime) -> bool:
        """Insert unless the user already has an account of this kind; True when inserted."""
        stmt = (
            _insert(self._s)(TradingAccountRow)
            .values(
                user_id=account.user_id,
                kind=account.kind.value,
                login=account.login,
                server=account.server,
                password_enc=password_enc,
                created_at=now,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["user_id", "kind"])
        )
        return bool((await self._s.execute(stmt)).rowcount)

    async def live_owner(self, login: int, server: str) -> int | None:
        """The user whose live account is (login, server) (server case-insensitive), if any."""
        return await self._s.scalar(
            select(TradingAccountRow.user_id).where(
                TradingAccountRow.kind == AccountKind.LIVE.value, TradingAccountRow.login == login,
                func.lower(TradingAccountRow.server) == server.strip().lower(),
            ).limit(1)
        )  # fmt: skip

    async def is_platform_demo(self, login: int, server: str, demo_server: str) -> bool:
        """Whether (login, server) is one of the platform's demo accounts: some user's demo account, or
        a stored demo account of the simulated server (not one opened as a real-mode account)."""
        if server.strip().lower() != demo_server.lower():
            return False
        if await self._s.scalar(
            select(TradingAccountRow.id).where(
                TradingAccountRow.kind == AccountKind.DEMO.value, TradingAccountRow.login == login
            ).limit(1)
        ) is not None:  # fmt: skip
            return True
        row = await self._s.get(SimAccountRow, login)
        return row is not None and not row.state.get("real", False)

    async def replace_account(self, account: LinkedAccount, password_enc: str | None, now: datetime) -> None:
        await self.remove_account(account.user_id, account.kind)
        await self.add_account(account, password_enc, now)

    async def remove_account(self, user_id: int, kind: AccountKind) -> bool:
        result = await self._s.execute(
            delete(TradingAccountRow).where(TradingAccountRow.user_id == user_id, TradingAccountRow.kind == kind.value)
        )
        return bool(result.rowcount)

    # ---- profile ----
    async def profile(self, user_id: int) -> TradingProfile:
        row = await self._s.get(TradingProfileRow, user_id)
        if row is None:
            return TradingProfile(user_id)
        return TradingProfile(
            user_id=row.user_id,
            active=AccountKind(row.active),
            auto_trading=row.auto_trading,
            kill_switch=row.kill_switch,
            limits=RiskLimits(row.max_volume, row.max_positions, row.max_daily_loss_pct, row.risk_per_trade_pct),
        )

    async def save_profile(self, profile: TradingProfile, now: datetime) -> None:
        values = {
            "active": profile.active.value,
            "auto_trading": profile.auto_trading,
            "kill_switch": profile.kill_switch,
            "max_volume": profile.limits.max_volume,
            "max_positions": profile.limits.max_positions,
            "max_daily_loss_pct": profile.limits.max_daily_loss_pct,
            "risk_per_trade_pct": profile.limits.risk_per_trade_pct,
            "updated_at": now,
        }
        stmt = _insert(self._s)(TradingProfileRow).values(user_id=profile.user_id, **values)
        await self._s.execute(stmt.on_conflict_do_update(index_elements=["user_id"], set_=values))

    # ---- orders ----
    async def add_order(self, order: Order) -> None:
        self._s.add(
            OrderRow(
                id=order.id,
                user_id=order.user_id,
                account_kind=order.account_kind.value,
                login=order.login,
                action=order.kind.value,
                symbol=order.symbol,
                params=order.params,
                status=order.status.value,
                retcode=order.retcode,
                result=order.result,
                created_at=order.created_at,
                updated_at=order.created_at,
            )
        )
        await self._s.flush()

    async def order(self, order_id: str) -> Order | None:
        row = await self._s.get(OrderRow, order_id, populate_existing=True)
        return _order(row) if row else None

    async def transition(
        self, order_id: str, user_id: int, frm: OrderStatus, to: OrderStatus, now: datetime, **changes: Any
    ) -> bool:
        """Atomically move one of the user's orders from ``frm`` to ``to``; False when it was not in ``frm``."""
        result = await self._s.execute(
            update(OrderRow)
            .where(OrderRow.id == order_id, OrderRow.user_id == user_id, OrderRow.status == frm.value)
            .values(status=to.value, updated_at=now, **changes)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    async def unsettled(
        self, kind: AccountKind, login: int, exclude: str | None = None, *, known_unknown: bool = False
    ) -> Order | None:
        """The oldest order on the account (kind, login) whose outcome is not settled (SENDING), if any;
        ``known_unknown``: only one whose send already ended without an answer (see :meth:`mark_unknown`)."""
        stmt = select(OrderRow).where(
            OrderRow.status == OrderStatus.SENDING.value, OrderRow.account_kind == kind.value, OrderRow.login == login
        )
        if exclude is not None:
            stmt = stmt.where(OrderRow.id != exclude)
        rows = (await self._s.execute(stmt.order_by(OrderRow.updated_at).limit(20))).scalars()
        found = [_order(r) for r in rows]
        if known_unknown:
            found = [o for o in found if o.result.get("unknown")]
        return found[0] if found else None

    async def mark_unknown(self, order_id: str, error: str) -> bool:
        """Note on a SENDING order that its send ended without an answer (its claim time stays as it was)."""
        result = await self._s.execute(
            update(OrderRow)
            .where(OrderRow.id == order_id, OrderRow.status == OrderStatus.SENDING.value)
            .values(result={"unknown": error})
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    async def sending(self, limit: int = 100) -> list[Order]:
        """Orders not settled yet (SENDING), the longest-waiting first: what the reconciler looks at."""
        rows = await self._s.execute(
            select(OrderRow).where(OrderRow.status == OrderStatus.SENDING.value).order_by(OrderRow.updated_at)
            .limit(limit)
        )  # fmt: skip
        return [_order(r) for r in rows.scalars()]

    # ---- alerts ----
    async def add_alert(self, rule: AlertRule, now: datetime) -> AlertRule:
        row = AlertRow(
            user_id=rule.user_id,
            symbol=rule.symbol,
            kind=rule.kind.value,
            threshold=rule.threshold,
            pct=rule.pct,
            window_s=rule.window_s,
            repeat=rule.repeat,
            cooldown_s=rule.cooldown_s,
            status=rule.status.value,
            created_price=rule.created_price,
            created_msc=rule.created_msc,
            last_triggered_msc=None,
            last_price=None,
            created_at=now,
        )
        self._s.add(row)
        await self._s.flush()
        return _rule(row)

    async def alerts(self, user_id: int) -> list[AlertRule]:
        rows = await self._s.execute(
            select(AlertRow)
            .where(AlertRow.user_id == user_id, AlertRow.status.in_(LIVE_STATUSES))
            .order_by(AlertRow.id)
        )
        return [_rule(r) for r in rows.scalars()]

    async def alert(self, alert_id: int) -> AlertRule | None:
        row = await self._s.get(AlertRow, alert_id, populate_existing=True)
        return _rule(row) if row else None

    async def count_alerts(self, user_id: int) -> int:
        stmt = select(func.count()).where(AlertRow.user_id == user_id, AlertRow.status.in_(LIVE_STATUSES))
        return int((await self._s.execute(stmt)).scalar_one())

    async def set_alert_status(self, alert_id: int, user_id: int, status: AlertStatus) -> bool:
        result = await self._s.execute(
            update(AlertRow)
            .where(AlertRow.id == alert_id, AlertRow.user_id == user_id, AlertRow.status.in_(LIVE_STATUSES))
            .values(status=status.value)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    async def delete_alert(self, alert_id: int, user_id: int) -> bool:
        result = await self._s.execute(delete(AlertRow).where(AlertRow.id == alert_id, AlertRow.user_id == user_id))
        return result.rowcount == 1


def _order(row: OrderRow) -> Order:
    return Order(
        id=row.id,
        user_id=row.user_id,
        account_kind=AccountKind(row.account_kind),
        login=row.login,
        kind=OrderKind(row.action),
        symbol=row.symbol,
        params=dict(row.params or {}),
        status=OrderStatus(row.status),
        retcode=row.retcode,
        result=dict(row.result or {}),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _rule(row: AlertRow) -> AlertRule:
    return AlertRule(
        id=row.id,
        user_id=row.user_id,
        symbol=row.symbol,
        kind=AlertKind(row.kind),
        threshold=row.threshold,
        pct=row.pct,
        window_s=row.window_s,
        repeat=row.repeat,
        cooldown_s=row.cooldown_s,
        status=AlertStatus(row.status),
        created_price=row.created_price,
        created_msc=row.created_msc,
        last_triggered_msc=row.last_triggered_msc,
        last_price=row.last_price,
    )


class SqlAlertStore:
    """The alert evaluator's repository (``domain.alerts.service.AlertRepository``); own transactions."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    async def list_active(self, symbols: Collection[str] | None = None) -> Sequence[AlertRule]:
        stmt = select(AlertRow).where(AlertRow.status.in_(LIVE_STATUSES))
        if symbols is not None:
            stmt = stmt.where(AlertRow.symbol.in_(list(symbols)))
        async with self._sessionmaker() as session:
            return [_rule(r) for r in (await session.execute(stmt.order_by(AlertRow.id))).scalars()]

    async def mark_triggered(self, alert_id: int, time_msc: int, price: float, deactivate: bool) -> bool:
        async with self._sessionmaker() as session:
            ok = await mark_triggered_in(session, alert_id, time_msc, price, deactivate)
            await session.commit()
            return ok


async def mark_triggered_in(
    session: AsyncSession, alert_id: int, time_msc: int, price: float, deactivate: bool
) -> bool:
    """``mark_triggered`` inside the caller's transaction (the outbox adds the notification to it).

    The stored last firing and the rule's cooldown decide, not the caller's memory: an evaluator that
    took a symbol over from another process cannot fire a repeating alert again before its cooldown.
    """
    values: dict[str, Any] = {"last_triggered_msc": time_msc, "last_price": price}
    if deactivate:
        values["status"] = AlertStatus.TRIGGERED.value
    stmt = (
        update(AlertRow)
        .where(
            AlertRow.id == alert_id,
            AlertRow.status != AlertStatus.TRIGGERED.value,
            (AlertRow.last_triggered_msc.is_(None))
            | (AlertRow.last_triggered_msc + AlertRow.cooldown_s * 1000 < time_msc),
        )
        .values(**values)
    )
    result = await session.execute(stmt)
    return bool(result.rowcount == 1)


class SqlDemoStore:
    """The simulated terminal's demo accounts (``sim_accounts``/``sim_deals``); own transactions.

    :meth:`locked` holds one account's row (``FOR UPDATE`` on PostgreSQL) for the
    length of one terminal call, so processes take turns on an account.
    """

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    @asynccontextmanager
    async def locked(self, login: int) -> AsyncIterator[LockedAccount]:
        async with self._sessionmaker() as session, session.begin():
            row = await session.scalar(select(SimAccountRow).where(SimAccountRow.login == login).with_for_update())
            yield LockedAccount(session, login, row)

    async def reserve(self, name: str, count: int, start: int) -> int:
        """Reserve ``count`` ids of the sequence ``name`` (first use starts at ``start``); returns the first."""
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                _insert(session)(SimSequenceRow).values(name=name, value=start).on_conflict_do_nothing()
            )
            end = await session.scalar(
                update(SimSequenceRow).where(SimSequenceRow.name == name)
                .values(value=SimSequenceRow.value + count).returning(SimSequenceRow.value)
            )  # fmt: skip
        assert end is not None
        return int(end) - count


class LockedAccount:
    """One account's row inside :meth:`SqlDemoStore.locked` (None when it is not stored yet)."""

    def __init__(self, session: AsyncSession, login: int, row: SimAccountRow | None) -> None:
        self._s, self.login, self.row = session, login, row

    async def deals(self, start: int = 0) -> list[list[Any]]:
        rows = await self._s.scalars(
            select(SimDealRow.data).where(SimDealRow.login == self.login, SimDealRow.seq >= start)
            .order_by(SimDealRow.seq)
        )  # fmt: skip
        return list(rows)

    async def save(self, state: dict[str, Any], deals: Sequence[Sequence[Any]], now: datetime) -> int:
        """Store the state and append ``deals`` after the stored ones; returns the new version."""
        stored = self.row.deals if self.row is not None else 0
        if self.row is None:
            self.row = SimAccountRow(login=self.login, version=0, state=state, deals=0, updated_at=now)
            self._s.add(self.row)
            await self._s.flush()  # a concurrent first save fails here, on the primary key
        self._s.add_all(
            SimDealRow(login=self.login, seq=stored + i, data=list(d)) for i, d in enumerate(deals)
        )  # fmt: skip
        self.row.state, self.row.deals, self.row.updated_at = state, stored + len(deals), now
        self.row.version += 1
        await self._s.flush()
        return self.row.version


async def reseal_credentials(sessionmaker: async_sessionmaker[AsyncSession], box: SecretBox) -> tuple[int, int]:
    """Re-seal every stored broker password under the current SECRET_KEY (run at start-up after a rotation).

    Returns (re-sealed, unreadable): unreadable ones open under no configured key (a key dropped too soon).
    Compare-and-set per row, so a password re-linked meanwhile (or re-sealed by another replica) wins.
    """
    resealed = unreadable = 0
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(TradingAccountRow.id, TradingAccountRow.password_enc).where(
                    TradingAccountRow.password_enc.is_not(None)
                )
            )
        ).all()
        for row_id, token in rows:
            if box.is_current(token):
                continue
            try:
                fresh = box.reseal(token)
            except ValueError:
                unreadable += 1
                continue
            result = await session.execute(
                update(TradingAccountRow)
                .where(TradingAccountRow.id == row_id, TradingAccountRow.password_enc == token)
                .values(password_enc=fresh)
            )
            resealed += int(result.rowcount or 0)
        await session.commit()
    return resealed, unreadable
