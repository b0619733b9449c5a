"""Billing repositories: subscriptions, payments, Stripe events, referral rewards, credits, meter reports.

They never commit; the billing use cases do.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from domain.billing.model import InboxFigures, InboxPayment, Payment, Rail, Reward, StarsPayment, Status, Subscription
from domain.db.models import (
    CreditRow,
    MeterReportRow,
    PaymentInboxRow,
    PaymentRow,
    ReferralRewardRow,
    StripeEventRow,
    SubscriptionRow,
    UsageEventRow,
    UserRow,
)
from domain.errors import NotFound

_SUB_FIELDS = frozenset(
    {"tier", "status", "current_period_end", "cancel_at_period_end", "customer_id", "grace_until", "reminded_for"}
)


def _sub(row: SubscriptionRow) -> Subscription:
    return Subscription(
        id=row.id,
        user_id=row.user_id,
        tier=row.tier,
        status=Status(row.status),
        rail=Rail(row.rail),
        external_id=row.external_id,
        current_period_end=row.current_period_end,
        cancel_at_period_end=row.cancel_at_period_end,
        customer_id=row.customer_id,
        grace_until=row.grace_until,
        reminded_for=row.reminded_for,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _payment(row: PaymentRow) -> Payment:
    return Payment(
        id=row.id,
        user_id=row.user_id,
        rail=Rail(row.rail),
        kind=row.kind,
        tier=row.tier,
        amount=row.amount,
        currency=row.currency,
        status=row.status,
        external_id=row.external_id,
        created_at=row.created_at,
        refunded_at=row.refunded_at,
    )


class SqlBillingRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    def _insert(self, model: Any) -> Any:
        return (pg_insert if self._s.bind.dialect.name == "postgresql" else sqlite_insert)(model)

    # --- subscriptions ---

    async def subscriptions_of(self, user_id: int) -> list[Subscription]:
        rows = await self._s.scalars(
            select(SubscriptionRow).where(SubscriptionRow.user_id == user_id).order_by(SubscriptionRow.id)
        )
        return [_sub(r) for r in rows]

    async def subscription(self, sub_id: int, *, lock: bool = False) -> Subscription | None:
        row = await self._s.get(SubscriptionRow, sub_id, with_for_update=lock)
        return _sub(row) if row else None

    async def by_external(self, external_id: str, *, lock: bool = False) -> Subscription | None:
        query = select(SubscriptionRow).where(SubscriptionRow.external_id == external_id)
        if lock:
            query = query.with_for_update()
        row = (await self._s.execute(query)).scalar_one_or_none()
        return _sub(row) if row else None

    async def add_subscription(
        self, *, user_id: int, tier: str, status: Status, rail: Rail, external_id: str, now: datetime, **fields: Any
    ) -> Subscription | None:
        """Insert unless the external id exists; None when it did (a replay or a second trial)."""
        values = {
            "user_id": user_id,
            "tier": tier,
            "status": status.value,
            "rail": rail.value,
            "external_id": external_id,
            "current_period_end": fields.get("current_period_end"),
            "cancel_at_period_end": bool(fields.get("cancel_at_period_end", False)),
            "customer_id": fields.get("customer_id"),
            "grace_until": fields.get("grace_until"),
            "reminded_for": None,
            "created_at": now,
            "updated_at": now,
        }
        result = await self._s.execute(
            self._insert(SubscriptionRow).values(**values).on_conflict_do_nothing(index_elements=["external_id"])
        )
        if not result.rowcount:
            return None
        return await self.by_external(external_id)

    async def update_subscription(self, sub_id: int, now: datetime, **fields: Any) -> Subscription:
        unknown = set(fields) - _SUB_FIELDS
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        row = await self._s.get(SubscriptionRow, sub_id, with_for_update=True)
        if row is None:
            raise NotFound("subscription", subscription_id=sub_id)
        for name, value in fields.items():
            setattr(row, name, value.value if isinstance(value, Status) else value)
        row.updated_at = now
        await self._s.flush()
        return _sub(row)

    async def live(self) -> list[Subscription]:
        """Every subscription that still grants something or may need a reminder."""
        rows = await self._s.scalars(
            select(SubscriptionRow)
            .where(SubscriptionRow.status.in_([Status.TRIALING.value, Status.ACTIVE.value, Status.PAST_DUE.value]))
            .order_by(SubscriptionRow.id)
        )
        return [_sub(r) for r in rows]

    async def stripe_customers(self) -> dict[int, str]:
        """user id -> Stripe customer of their live card subscription."""
        rows = await self._s.execute(
            select(SubscriptionRow.user_id, SubscriptionRow.customer_id).where(
                SubscriptionRow.rail == Rail.STRIPE.value,
                SubscriptionRow.customer_id.is_not(None),
                SubscriptionRow.status.in_([Status.ACTIVE.value, Status.PAST_DUE.value, Status.TRIALING.value]),
            )
        )
        return {user_id: customer for user_id, customer in rows}

    # --- payments ---

    async def add_payment(
        self,
        *,
        user_id: int,
        rail: Rail,
        kind: str,
        tier: str | None,
        amount: int,
        currency: str,
        status: str,
        external_id: str,
        now: datetime,
    ) -> bool:
        """Record a payment once; False when its external id was already stored."""
        values = {
            "user_id": user_id,
            "rail": rail.value,
            "kind": kind,
            "tier": tier,
            "amount": amount,
            "currency": currency,
            "status": status,
            "external_id": external_id,
            "created_at": now,
            "refunded_at": None,
        }
        result = await self._s.execute(
            self._insert(PaymentRow).values(**values).on_conflict_do_nothing(index_elements=["external_id"])
        )
        return bool(result.rowcount)

    async def payment(self, external_id: str, *, lock: bool = False) -> Payment | None:
        query = select(PaymentRow).where(PaymentRow.external_id == external_id)
        if lock:
            query = query.with_for_update()
        row = (await self._s.execute(query)).scalar_one_or_none()
        return _payment(row) if row else None

    async def payments_of(self, user_id: int, limit: int = 10) -> list[Payment]:
        rows = await self._s.scalars(
            select(PaymentRow)
            .where(PaymentRow.user_id == user_id)
            .order_by(PaymentRow.created_at.desc(), PaymentRow.id.desc())
            .limit(limit)
        )
        return [_payment(r) for r in rows]

    async def paid_count(self, user_id: int) -> int:
        """Payments of real money (refunded ones included: they were paid once)."""
        total = await self._s.scalar(
            select(func.count())
            .select_from(PaymentRow)
            .where(PaymentRow.user_id == user_id, PaymentRow.status.in_(["paid", "refunded"]), PaymentRow.amount > 0)
        )
        return int(total or 0)

    async def mark_refunded(self, external_id: str, now: datetime) -> bool:
        result = await self._s.execute(
            update(PaymentRow)
            .where(PaymentRow.external_id == external_id, PaymentRow.status == "paid")
            .values(status="refunded", refunded_at=now)
        )
        return bool(result.rowcount)

    # --- the payment inbox ---

    async def inbox_add(
        self, kind: str, user_id: int, payment: StarsPayment, raw: dict[str, Any], now: datetime, retry_at: datetime
    ) -> bool:
        """Store a received payment (or refund) once by charge id; False when it was stored before."""
        values = {
            "kind": kind, "charge_id": payment.charge_id, "user_id": user_id, "payload": payment.payload,
            "currency": payment.currency, "total_amount": payment.total_amount,
            "is_recurring": payment.is_recurring, "is_first_recurring": payment.is_first_recurring,
            "expires_at": payment.expires_at, "raw": raw, "status": "pending", "attempts": 0,
            "last_error": None, "told_pending": False, "received_at": now, "next_attempt_at": retry_at,
            "done_at": None,
        }  # fmt: skip
        result = await self._s.execute(
            self._insert(PaymentInboxRow).values(**values).on_conflict_do_nothing(index_elements=["kind", "charge_id"])
        )
        return bool(result.rowcount)

    async def inbox_pending(self, charge_id: str, kind: str = "paid") -> bool:
        status = await self._s.scalar(
            select(PaymentInboxRow.status).where(PaymentInboxRow.kind == kind, PaymentInboxRow.charge_id == charge_id)
        )
        return status == "pending"

    async def inbox_done(self, charge_id: str, now: datetime, kind: str = "paid") -> None:
        await self._s.execute(
            update(PaymentInboxRow)
            .where(
                PaymentInboxRow.kind == kind, PaymentInboxRow.charge_id == charge_id,
                PaymentInboxRow.status == "pending",
            )  # fmt: skip
            .values(status="done", done_at=now, next_attempt_at=now)
        )

    async def inbox_failed(self, charge_id: str, error: str, retry_at: datetime, kind: str = "paid") -> bool:
        """Count a failed attempt; True the first time the payer should be told it is being processed."""
        row = (
            await self._s.execute(
                select(PaymentInboxRow)
                .where(
                    PaymentInboxRow.kind == kind, PaymentInboxRow.charge_id == charge_id,
                    PaymentInboxRow.status == "pending",
                )  # fmt: skip
                .with_for_update()
            )
        ).scalar_one_or_none()
        if row is None:
            return False
        tell = not row.told_pending
        row.attempts += 1
        row.last_error = error[:64]
        row.next_attempt_at = retry_at
        row.told_pending = True
        return tell

    async def inbox_due(self, now: datetime, limit: int = 50) -> list[InboxPayment]:
        rows = await self._s.scalars(
            select(PaymentInboxRow)
            .where(PaymentInboxRow.status == "pending", PaymentInboxRow.next_attempt_at <= now)
            .order_by(PaymentInboxRow.kind, PaymentInboxRow.next_attempt_at, PaymentInboxRow.id)  # payments first
            .limit(limit)
        )
        return [
            InboxPayment(
                r.user_id, r.kind,
                StarsPayment(r.charge_id, r.payload, r.currency, r.total_amount, r.is_recurring,
                             r.is_first_recurring, r.expires_at),
                r.attempts, r.received_at, r.last_error,
            )  # fmt: skip
            for r in rows
        ]

    async def inbox_figures(self) -> InboxFigures:
        pending = PaymentInboxRow.status == "pending"
        count = await self._s.scalar(select(func.count()).select_from(PaymentInboxRow).where(pending))
        oldest = await self._s.scalar(
            select(PaymentInboxRow.received_at).where(pending).order_by(PaymentInboxRow.received_at).limit(1)
        )
        return InboxFigures(int(count or 0), oldest)

    # --- Stripe events ---

    async def record_event(self, event_id: str, event_type: str, now: datetime) -> bool:
        """Claim an event id; False when it was processed before (or is being processed now)."""
        result = await self._s.execute(
            self._insert(StripeEventRow)
            .values(id=event_id, type=event_type[:64], received_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        return bool(result.rowcount)

    async def event_seen(self, event_id: str) -> bool:
        return await self._s.get(StripeEventRow, event_id) is not None

    # --- referral rewards ---

    async def add_reward(self, *, referee_id: int, referrer_id: int, payment_id: str, days: int, now: datetime) -> bool:
        result = await self._s.execute(
            self._insert(ReferralRewardRow)
            .values(referee_id=referee_id, referrer_id=referrer_id, payment_id=payment_id, days=days, granted_at=now)
            .on_conflict_do_nothing(index_elements=["referee_id"])
        )
        return bool(result.rowcount)

    async def reward_of_payment(self, payment_id: str, *, lock: bool = False) -> Reward | None:
        """The referral reward the payment ``payment_id`` (its external id) earned, if any."""
        query = select(ReferralRewardRow).where(ReferralRewardRow.payment_id == payment_id)
        if lock:
            query = query.with_for_update()
        row = (await self._s.execute(query)).scalar_one_or_none()
        if row is None:
            return None
        return Reward(row.id, row.referee_id, row.referrer_id, row.payment_id, row.days, row.granted_at, row.revoked_at)

    async def revoke_reward(self, reward_id: int, now: datetime) -> bool:
        """Mark a reward revoked; False when it already was (a second refund event, a replay)."""
        result = await self._s.execute(
            update(ReferralRewardRow)
            .where(ReferralRewardRow.id == reward_id, ReferralRewardRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return bool(result.rowcount)

    async def referral_counts(self, referrer_id: int) -> tuple[int, int, int, int]:
        """(invited, converted, reward days, refunded) for one referrer: a reward whose payment was refunded
        (revoked) converted nobody and can never be earned again."""
        invited = await self._s.scalar(
            select(func.count()).select_from(UserRow).where(UserRow.referred_by == referrer_id)
        )
        live = ReferralRewardRow.revoked_at.is_(None)
        converted, days, refunded = (
            await self._s.execute(
                select(
                    func.count().filter(live),
                    func.coalesce(func.sum(ReferralRewardRow.days).filter(live), 0),
                    func.count().filter(ReferralRewardRow.revoked_at.is_not(None)),
                ).where(ReferralRewardRow.referrer_id == referrer_id)
            )
        ).one()
        return int(invited or 0), int(converted or 0), int(days or 0), int(refunded or 0)

    # --- credits ---

    async def credits(self, user_id: int) -> int:
        row = await self._s.get(CreditRow, user_id)
        return row.ai_analyses if row else 0

    async def add_credits(self, user_id: int, amount: int, now: datetime) -> int:
        row = await self._s.get(CreditRow, user_id, with_for_update=True)
        if row is None:
            row = CreditRow(user_id=user_id, ai_analyses=0, updated_at=now)
            self._s.add(row)
        row.ai_analyses = max(0, row.ai_analyses + amount)
        row.updated_at = now
        await self._s.flush()
        return row.ai_analyses

    # --- metered overage ---

    async def unreported_usage(self, user_id: int, name: str, since: datetime) -> list[tuple[str, datetime, int, bool]]:
        """(event id, at, quantity, already reported) of one user's events of a kind since a moment, oldest first."""
        rows = await self._s.execute(
            select(UsageEventRow.id, UsageEventRow.at, UsageEventRow.quantity, MeterReportRow.usage_event_id)
            .outerjoin(MeterReportRow, MeterReportRow.usage_event_id == UsageEventRow.id)
            .where(UsageEventRow.user_id == user_id, UsageEventRow.name == name, UsageEventRow.at >= since)
            .order_by(UsageEventRow.at, UsageEventRow.id)
        )
        return [(event_id, at, quantity, reported is not None) for event_id, at, quantity, reported in rows]

    async def mark_reported(self, user_id: int, event_id: str, now: datetime) -> None:
        await self._s.execute(
            self._insert(MeterReportRow)
            .values(usage_event_id=event_id, user_id=user_id, reported_at=now)
            .on_conflict_do_nothing(index_elements=["usage_event_id"])
        )
