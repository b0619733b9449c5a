"""Billing data: subscription states and rails, payments, notices for the chat."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from domain.errors import DomainError

GRACE = timedelta(days=3)
TRIAL_DAYS = 7
TRIAL_TIER = "pro"
REWARD_DAYS = 14
REWARD_TIER = "pro"
STARS_PERIOD = 2_592_000  # 30 days, the only period Telegram accepts
PACK_SIZE = 50  # AI analyses in one Stars pack
PACK_STARS = 250
REMIND_BEFORE = timedelta(days=2)


class Status(StrEnum):
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    EXPIRED = "expired"


class Rail(StrEnum):
    STRIPE = "stripe"
    STARS = "stars"
    TRIAL = "trial"
    REFERRAL = "referral"
    GRANT = "grant"  # given by an admin with /grant


RENEWING = frozenset({Rail.STRIPE, Rail.STARS})

# The state machine every rail follows; free is "no entitling subscription".
TRANSITIONS: dict[Status | None, frozenset[Status]] = {
    None: frozenset({Status.TRIALING, Status.ACTIVE, Status.PAST_DUE}),
    Status.TRIALING: frozenset({Status.ACTIVE, Status.PAST_DUE, Status.CANCELED, Status.EXPIRED}),
    Status.ACTIVE: frozenset({Status.PAST_DUE, Status.CANCELED, Status.EXPIRED}),
    Status.PAST_DUE: frozenset({Status.ACTIVE, Status.CANCELED, Status.EXPIRED}),
    Status.CANCELED: frozenset({Status.ACTIVE}),  # a Stars subscriber who pays again
    Status.EXPIRED: frozenset({Status.ACTIVE}),
}


def can_move(current: Status | None, new: Status) -> bool:
    return current == new or new in TRANSITIONS[current]


@dataclass(frozen=True, slots=True)
class Subscription:
    id: int
    user_id: int
    tier: str
    status: Status
    rail: Rail
    external_id: str | None
    current_period_end: datetime | None
    cancel_at_period_end: bool
    customer_id: str | None
    grace_until: datetime | None
    reminded_for: datetime | None
    created_at: datetime
    updated_at: datetime

    def entitled_until(self) -> datetime | None:
        """Until when this subscription grants its tier (None: it grants nothing)."""
        end = self.current_period_end
        if self.status == Status.TRIALING:
            return end
        if self.status == Status.ACTIVE and end is not None:
            # Grace covers a late renewal payment; rails that never renew end on the day.
            return end if self.cancel_at_period_end or self.rail not in RENEWING else end + GRACE
        if self.status == Status.PAST_DUE:
            return self.grace_until
        return None

    def entitles(self, now: datetime) -> bool:
        until = self.entitled_until()
        return until is not None and until > now

    @property
    def charge_id(self) -> str | None:
        """The Telegram charge id a Stars subscription is managed by."""
        if self.rail == Rail.STARS and self.external_id:
            return self.external_id.split(":", 1)[1]
        return None


@dataclass(frozen=True, slots=True)
class Payment:
    id: int
    user_id: int
    rail: Rail
    kind: str  # subscription | renewal | pack | invoice
    tier: str | None
    amount: int  # cents for USD, stars for XTR
    currency: str
    status: str  # paid | failed | refunded
    external_id: str
    created_at: datetime
    refunded_at: datetime | None

    @property
    def charge_id(self) -> str:
        return self.external_id.split(":", 1)[1]


class NoticeKind(StrEnum):
    TRIAL_STARTED = "trial_started"
    ACTIVATED = "activated"
    RENEWED = "renewed"
    PAYMENT_FAILED = "payment_failed"
    DOWNGRADED = "downgraded"
    CANCELED = "canceled"
    RESUMED = "resumed"
    TRIAL_ENDING = "trial_ending"
    RENEWAL_SOON = "renewal_soon"
    REFERRAL_REWARD = "referral_reward"
    REFERRAL_THANKS = "referral_thanks"
    REFERRAL_REVOKED = "referral_revoked"
    REFUNDED = "refunded"
    CREDITS_ADDED = "credits_added"
    PAYMENT_PROCESSING = "payment_processing"  # received, not applied yet: the inbox retries it


@dataclass(frozen=True, slots=True)
class Notice:
    """Something to tell a user in the chat; the bot layer renders and sends it."""

    user_id: int
    locale: str
    kind: NoticeKind
    params: dict[str, Any] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class StarsInvoice:
    title_tier: str | None  # tier code, or None for the analyses pack
    payload: str
    amount: int
    subscription_period: int | None


@dataclass(frozen=True, slots=True)
class StarsPayment:
    charge_id: str
    payload: str
    currency: str
    total_amount: int
    is_recurring: bool
    is_first_recurring: bool
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class InboxPayment:
    """A Stars payment as stored in the payment inbox before it was applied."""

    user_id: int
    kind: str  # paid | refunded
    payment: StarsPayment
    attempts: int
    received_at: datetime
    last_error: str | None


@dataclass(frozen=True, slots=True)
class InboxFigures:
    """Payments received and not applied yet (the retry job's backlog), for staff."""

    pending: int
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class Overview:
    current: Subscription | None
    subscriptions: list[Subscription]
    payments: list[Payment]
    credits: int
    trial_available: bool
    stripe_enabled: bool


@dataclass(frozen=True, slots=True)
class ReferralStats:
    code: str
    invited: int
    converted: int
    reward_days: int
    pending: int


class BillingError(DomainError):
    code = "BIL-ERROR"


class TrialUsed(BillingError):
    code = "BIL-TRIAL-USED"


class AlreadySubscribed(BillingError):
    """params: tier"""

    code = "BIL-SUBSCRIBED"


class StripeDisabled(BillingError):
    code = "BIL-NO-CARD"


class PaymentNotFound(BillingError):
    code = "BIL-NO-PAYMENT"


class NothingToManage(BillingError):
    code = "BIL-NO-SUB"


class UnknownPlan(BillingError):
    code = "BIL-NO-PLAN"


class PaymentProviderDown(BillingError):
    code = "BIL-PROVIDER"


@dataclass(frozen=True, slots=True)
class Reward:
    """Pro days a referrer earned from a referee's first payment (``payment_id``: its external id)."""

    id: int
    referee_id: int
    referrer_id: int
    payment_id: str
    days: int
    granted_at: datetime
    revoked_at: datetime | None  # the payment was refunded or charged back: the days were taken back
