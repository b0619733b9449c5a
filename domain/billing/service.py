"""The billing use cases: trial, Stars and Stripe payments, renewals, cancellation, dunning, rewards.

Every subscription follows one state machine (:data:`domain.billing.model.TRANSITIONS`):
trialing → active → past_due (grace) → canceled/expired. After any change the
user's tier is recomputed from all their subscriptions and written with the
change, audited, in one transaction; the profile cache is refreshed after the
commit. Use cases return :class:`Notice` values; the bot layer tells the user.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from domain.audit import AuditEntry, Surface
from domain.billing.model import (
    GRACE,
    PACK_SIZE,
    PACK_STARS,
    REMIND_BEFORE,
    REWARD_DAYS,
    REWARD_TIER,
    STARS_PERIOD,
    TRIAL_DAYS,
    TRIAL_TIER,
    AlreadySubscribed,
    InboxFigures,
    NothingToManage,
    Notice,
    NoticeKind,
    Overview,
    PaymentNotFound,
    Rail,
    StarsInvoice,
    StarsPayment,
    Status,
    StripeDisabled,
    Subscription,
    TrialUsed,
    UnknownPlan,
    can_move,
)
from domain.billing.stripe import StripeGateway, StripeSubscription
from domain.clock import Clock, utcnow
from domain.errors import DomainError, Forbidden
from domain.quotas import ai_day, ai_day_start
from domain.tiers import FREE, Quota, TierCatalog
from domain.users import User, UserService

if TYPE_CHECKING:
    from domain.db.uow import UnitOfWork

log = logging.getLogger(__name__)

RENEWAL_SLACK = timedelta(days=1)  # a renewal may land a little after the period end
OVERAGE_LOOKBACK = timedelta(days=7)
METER_EVENT = "ai_analysis_overage"
REVERSALS = ("charge.refunded", "charge.dispute.created")  # Stripe events that take a card payment back
_LIVE = (Status.TRIALING, Status.ACTIVE, Status.PAST_DUE)
PAID, REFUNDED = "paid", "refunded"  # the payment inbox's kinds
INBOX_RETRY = timedelta(seconds=30)  # a received payment not applied by its update is retried after this
INBOX_MAX_RETRY = timedelta(hours=1)  # ... doubling up to this


class StarsApi(Protocol):
    """Telegram's Stars methods, given by the bot layer."""

    async def refund(self, user_id: int, charge_id: str) -> None: ...
    async def set_canceled(self, user_id: int, charge_id: str, canceled: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class _Payload:
    kind: str  # "sub" | "pack"
    code: str
    user_id: int
    amount: int


class BillingService:
    def __init__(
        self,
        tiers: TierCatalog,
        users: UserService,
        secret: bytes,
        *,
        unit: Callable[[], UnitOfWork],
        stripe: StripeGateway | None = None,
        clock: Clock = utcnow,
        old_secrets: Sequence[bytes] = (),
    ) -> None:
        self._tiers = tiers
        self._users = users
        self._key = hashlib.sha256(b"billing-payload:" + secret).digest()
        # invoices signed before a SECRET_KEY rotation stay payable (and are recognised when paid)
        self._keys = [self._key, *(hashlib.sha256(b"billing-payload:" + s).digest() for s in old_secrets if s)]
        self._unit = unit
        self.stripe = stripe
        self._clock = clock
        self.packs_enabled = False
        # Queues notices in the transaction that caused them (bot/views/billing.py NoticeOutbox), so each
        # goes out if and only if its change commits. Without one, callers deliver the returned notices.
        self.announce: Callable[[UnitOfWork, list[Notice]], Awaitable[None]] | None = None

    async def _commit(self, uow: UnitOfWork, notices: list[Notice]) -> None:
        if notices and self.announce is not None:
            await self.announce(uow, notices)
        await uow.commit()

    def enable_packs(self) -> None:
        """Offer the one-off analyses pack: call once the AI feature spends credits via :meth:`use_credit`."""
        self.packs_enabled = True

    # --- reading ---

    async def overview(self, uow: UnitOfWork, user: User) -> Overview:
        now = self._clock()
        subs = await uow.billing.subscriptions_of(user.id)
        return Overview(
            current=self._best(subs, now),
            subscriptions=[s for s in subs if s.status in _LIVE],
            payments=await uow.billing.payments_of(user.id),
            credits=await uow.billing.credits(user.id),
            trial_available=not any(s.rail == Rail.TRIAL for s in subs),
            stripe_enabled=self.stripe is not None,
        )

    def sells_by_card(self, tier: str) -> bool:
        return self.stripe is not None and self.stripe.sells(tier)

    # --- trial ---

    async def start_trial(self, uow: UnitOfWork, user: User) -> list[Notice]:
        now = self._clock()
        subs = await uow.billing.subscriptions_of(user.id)
        if any(s.rail == Rail.TRIAL for s in subs):
            raise TrialUsed("trial already used")
        best = self._best(subs, now)
        if best is not None and self._rank(best.tier) >= self._rank(TRIAL_TIER):
            raise AlreadySubscribed("already on a higher plan", tier=best.tier)
        end = now + timedelta(days=TRIAL_DAYS)
        sub = await uow.billing.add_subscription(
            user_id=user.id, tier=TRIAL_TIER, status=Status.TRIALING, rail=Rail.TRIAL,
            external_id=f"trial:{user.id}", now=now, current_period_end=end,
        )  # fmt: skip
        if sub is None:  # the unique external id: a concurrent second tap
            raise TrialUsed("trial already used")
        await self._audit(
            uow, "billing.trial_started", user.id, user.id, {"tier": TRIAL_TIER, "until": end.isoformat()}
        )
        await self._apply_tier(uow, user.id, now)
        notices = [Notice(user.id, user.locale, NoticeKind.TRIAL_STARTED, {"tier": TRIAL_TIER, "until": end})]
        await self._commit(uow, notices)
        self._users.forget(user.id)
        return notices

    # --- Telegram Stars ---

    def stars_invoice(self, user: User, tier_code: str) -> StarsInvoice:
        if tier_code not in self._tiers or not self._tiers.get(tier_code).is_paid:
            raise UnknownPlan("no such paid plan", tier=tier_code[:16])
        tier = self._tiers.get(tier_code)
        payload = self._sign("sub", tier.code, user.id, tier.price_stars)
        return StarsInvoice(tier.code, payload, tier.price_stars, STARS_PERIOD)

    def pack_invoice(self, user: User) -> StarsInvoice:
        if not self.packs_enabled:
            raise UnknownPlan("packs are not on sale", tier="pack")
        return StarsInvoice(None, self._sign("pack", "ai", user.id, PACK_STARS), PACK_STARS, None)

    def check_pre_checkout(self, user: User, payload: str, currency: str, total: int) -> str | None:
        """None when the payment may proceed, else the reason: payload | plan | price."""
        parsed = self._verify(payload)
        if parsed is None or parsed.user_id != user.id:
            return "payload"
        if parsed.kind == "sub":
            if parsed.code not in self._tiers or not self._tiers.get(parsed.code).is_paid:
                return "plan"
            expected = self._tiers.get(parsed.code).price_stars
        elif not self.packs_enabled:
            return "plan"
        else:
            expected = PACK_STARS
        if currency != "XTR" or parsed.amount != expected or total != expected:
            return "price"
        return None

    async def stars_paid(self, uow: UnitOfWork, user: User, payment: StarsPayment) -> list[Notice]:
        """Activate, renew or credit; a replayed charge id changes nothing."""
        now = self._clock()
        parsed = self._verify(payment.payload)
        renewal = payment.is_recurring and not payment.is_first_recurring
        if parsed is None or parsed.user_id != user.id:
            kind = "unmatched"
        else:
            kind = "pack" if parsed.kind == "pack" else ("renewal" if renewal else "subscription")
        tier = parsed.code if parsed is not None and parsed.kind == "sub" and parsed.code in self._tiers else None
        external = f"tg:{payment.charge_id}"
        created = await uow.billing.add_payment(
            user_id=user.id, rail=Rail.STARS, kind=kind, tier=tier, amount=payment.total_amount,
            currency=payment.currency, status="paid", external_id=external, now=now,
        )  # fmt: skip
        await uow.billing.inbox_done(payment.charge_id, now)  # applied: the inbox stops retrying it
        if not created:
            await uow.commit()
            return []
        await self._audit(
            uow, "billing.stars_paid", user.id, user.id, {"charge_id": payment.charge_id, "kind": kind, "tier": tier}
        )
        notices: list[Notice] = []
        if kind == "pack":
            balance = await uow.billing.add_credits(user.id, PACK_SIZE, now)
            notices.append(Notice(user.id, user.locale, NoticeKind.CREDITS_ADDED, {"n": PACK_SIZE, "balance": balance}))
        elif tier is not None:
            end = payment.expires_at or now + timedelta(seconds=STARS_PERIOD)
            existing = await self._stars_sub(uow, user.id, tier) if renewal else None
            if existing is not None:
                await uow.billing.update_subscription(
                    existing.id, now, status=Status.ACTIVE, current_period_end=max(end, existing.current_period_end or end),
                    grace_until=None, cancel_at_period_end=False,
                )  # fmt: skip
                notices.append(Notice(user.id, user.locale, NoticeKind.RENEWED, {"tier": tier, "until": end}))
            else:
                await uow.billing.add_subscription(
                    user_id=user.id, tier=tier, status=Status.ACTIVE, rail=Rail.STARS,
                    external_id=f"stars:{payment.charge_id}", now=now, current_period_end=end,
                )  # fmt: skip
                notices.append(Notice(user.id, user.locale, NoticeKind.ACTIVATED, {"tier": tier, "until": end}))
        else:
            log.warning("Stars payment %s matches no invoice of ours; kept for a staff refund", payment.charge_id)
        notices += await self._reward_referrer(uow, user.id, external, now)
        touched = await self._apply_tier(uow, user.id, now)
        touched += [n.user_id for n in notices if n.kind == NoticeKind.REFERRAL_REWARD]
        await self._commit(uow, notices)
        self._forget(touched)
        return notices

    # --- the payment inbox: a received payment is stored first, then applied until it is ---

    async def receive_stars(
        self, user_id: int, payment: StarsPayment, raw: dict[str, Any], kind: str = PAID
    ) -> bool:
        """Store a successful_payment (``kind`` paid) or refunded_payment (refunded) before anything else,
        in its own committed transaction.

        Raises when it cannot be stored: the update must then not be acknowledged (Telegram redelivers).
        Returns False for a charge stored before (a redelivery).
        """
        now = self._clock()
        async with self._unit() as uow:
            stored = await uow.billing.inbox_add(kind, user_id, payment, raw, now, now + INBOX_RETRY)
            await uow.commit()
        return stored

    async def stars_pending(self, charge_id: str, kind: str = PAID) -> bool:
        """Whether a received payment (or refund) is still waiting to be applied."""
        async with self._unit() as uow:
            return await uow.billing.inbox_pending(charge_id, kind)

    async def stars_deferred(
        self, user_id: int, charge_id: str, error: str, attempts: int = 0, kind: str = PAID
    ) -> list[Notice]:
        """A received payment (or refund) could not be applied: schedule a retry; a payer is told once that
        their payment is being processed (queued in the same transaction)."""
        now = self._clock()
        delay = min(INBOX_RETRY * (2 ** min(attempts, 10)), INBOX_MAX_RETRY)
        async with self._unit() as uow:
            notices: list[Notice] = []
            if await uow.billing.inbox_failed(charge_id, error, now + delay, kind) and kind == PAID:
                notices.append(await self._notice(uow, user_id, NoticeKind.PAYMENT_PROCESSING))
            await self._commit(uow, notices)
        return notices

    async def retry_inbox(self, now: datetime | None = None) -> int:
        """Apply every received payment whose retry is due (the scheduler's job); returns how many were applied.

        Applying is idempotent (the payment's charge id is unique), so a payment the chat path applied
        meanwhile changes nothing here."""
        now = now or self._clock()
        async with self._unit() as uow:
            due = await uow.billing.inbox_due(now)
        applied = 0
        for entry in due:
            try:
                async with self._unit() as uow:
                    user = await uow.users.get(entry.user_id)
                    if user is None:
                        raise PaymentNotFound("the payer has no profile", charge_id=entry.payment.charge_id[:64])
                    if entry.kind == REFUNDED:
                        await self.stars_refunded(uow, user, entry.payment.charge_id)
                    else:
                        await self.stars_paid(uow, user, entry.payment)
                applied += 1
            except Exception as exc:
                log.exception("received payment %s still not applied (attempt %d)", entry.payment.charge_id,
                              entry.attempts + 1)  # fmt: skip
                code = exc.code if isinstance(exc, DomainError) else type(exc).__name__
                await self.stars_deferred(
                    entry.user_id, entry.payment.charge_id, code, entry.attempts + 1, entry.kind
                )
        return applied

    async def inbox_figures(self) -> InboxFigures:
        async with self._unit() as uow:
            return await uow.billing.inbox_figures()

    async def refund(self, uow: UnitOfWork, staff: User, charge_id: str, api: StarsApi) -> list[Notice]:
        """Staff only: refund a Stars payment through Telegram, then revoke what it bought."""
        if not staff.is_staff:
            raise Forbidden("refunds are staff-only")
        payment = await uow.billing.payment(f"tg:{charge_id.strip()}")
        if payment is None or payment.status != "paid":
            raise PaymentNotFound("no refundable Stars payment", charge_id=charge_id[:64])
        await api.refund(payment.user_id, payment.charge_id)  # Telegram first: if it fails, nothing changes
        return await self._revoke(uow, payment.external_id, actor_id=staff.id)

    async def stars_refunded(self, uow: UnitOfWork, user: User, charge_id: str) -> list[Notice]:
        """Telegram's refunded_payment message (a refund made elsewhere, or ours echoed back)."""
        if await uow.billing.inbox_pending(charge_id, PAID):
            return []  # the payment itself still waits in the inbox: it is applied first, then this refund
        await uow.billing.inbox_done(charge_id, self._clock(), REFUNDED)  # in the revocation's transaction
        notices = await self._revoke(uow, f"tg:{charge_id}", actor_id=None)
        if not notices:
            await uow.commit()  # nothing to revoke (unknown, or refunded before): the refund is handled
        return notices

    async def _revoke(self, uow: UnitOfWork, external: str, *, actor_id: int | None) -> list[Notice]:
        now = self._clock()
        payment = await uow.billing.payment(external, lock=True)
        if payment is None or not await uow.billing.mark_refunded(external, now):
            return []
        if payment.kind == "pack":
            await uow.billing.add_credits(payment.user_id, -PACK_SIZE, now)
        elif payment.tier is not None:
            sub = await self._stars_sub(uow, payment.user_id, payment.tier)
            if sub is not None and sub.status in _LIVE:
                await uow.billing.update_subscription(sub.id, now, status=Status.CANCELED, current_period_end=now)
        await self._audit(
            uow, "billing.refunded", actor_id, payment.user_id, {"payment": external, "amount": payment.amount}
        )
        touched = await self._apply_tier(uow, payment.user_id, now)
        user = await uow.users.get(payment.user_id)
        locale = user.locale if user else "en"
        facts = {"amount": payment.amount, "charge_id": payment.charge_id}
        notices = [Notice(payment.user_id, locale, NoticeKind.REFUNDED, facts)]
        revoked = await self._revoke_reward(uow, external, now, actor_id=actor_id)
        touched += [n.user_id for n in revoked]
        notices += revoked
        await self._commit(uow, notices)
        self._forget(touched)
        return notices

    async def use_credit(self, uow: UnitOfWork, user_id: int) -> bool:
        """Spend one pack analysis beyond the daily quota; False when none is left. The caller commits."""
        if await uow.billing.credits(user_id) <= 0:
            return False
        await uow.billing.add_credits(user_id, -1, self._clock())
        return True

    # --- cancel / resume (both rails) ---

    async def own_subscription(self, uow: UnitOfWork, user: User, sub_id: int) -> Subscription:
        """A live, manageable subscription of this user (anything else: NothingToManage)."""
        sub = await uow.billing.subscription(sub_id)
        if (
            sub is None
            or sub.user_id != user.id
            or sub.status not in _LIVE
            or sub.rail not in (Rail.STRIPE, Rail.STARS)
        ):
            raise NothingToManage("no such subscription of this user")
        return sub

    async def set_renewal(
        self, uow: UnitOfWork, user: User, sub_id: int, *, cancel: bool, api: StarsApi
    ) -> list[Notice]:
        now = self._clock()
        sub = await self.own_subscription(uow, user, sub_id)
        if sub.cancel_at_period_end == cancel:
            return []
        if sub.rail == Rail.STRIPE:
            if self.stripe is None or sub.external_id is None:
                raise StripeDisabled("card payments are off")
            remote = await self.stripe.set_cancel_at_period_end(sub.external_id.split(":", 1)[1], cancel)
            notices = await self._sync_stripe(uow, remote, now, quiet=True)
        else:
            await api.set_canceled(user.id, sub.charge_id or "", cancel)
            await uow.billing.update_subscription(sub.id, now, cancel_at_period_end=cancel)
            notices = []
        await self._audit(
            uow, "billing.canceled" if cancel else "billing.resumed", user.id, user.id, {"subscription": sub.id}
        )
        touched = await self._apply_tier(uow, user.id, now)
        kind = NoticeKind.CANCELED if cancel else NoticeKind.RESUMED
        notices = [*notices, Notice(user.id, user.locale, kind, {"tier": sub.tier, "until": sub.current_period_end})]
        await self._commit(uow, notices)
        self._forget(touched)
        return notices

    # --- Stripe ---

    async def checkout_url(self, user: User, tier_code: str, return_url: str) -> str:
        if self.stripe is None:
            raise StripeDisabled("card payments are off")
        if not self.stripe.sells(tier_code) or tier_code not in self._tiers:
            raise UnknownPlan("no card price for this plan", tier=tier_code[:16])
        if not await self.stripe.price_matches(tier_code, self._tiers.get(tier_code).price_cents):
            log.error("Stripe price for %s differs from the tiers table: not selling it", tier_code)
            raise UnknownPlan("Stripe price differs from the tiers table", tier=tier_code)
        return await self.stripe.checkout_url(
            user_id=user.id, tier=tier_code, success_url=return_url, cancel_url=return_url
        )

    async def portal_url(self, uow: UnitOfWork, user: User, return_url: str) -> str:
        if self.stripe is None:
            raise StripeDisabled("card payments are off")
        subs = [s for s in await uow.billing.subscriptions_of(user.id) if s.rail == Rail.STRIPE and s.customer_id]
        if not subs:
            raise NothingToManage("no card subscription")
        return await self.stripe.portal_url(customer=subs[-1].customer_id or "", return_url=return_url)

    async def handle_stripe_event(self, event: Any) -> list[Notice]:
        """One verified webhook event, applied once. The subscription is re-read from Stripe, never trusted from the event."""
        if self.stripe is None:
            return []
        event_id, etype, obj = str(event["id"]), str(event["type"]), event["data"]["object"]
        now = self._clock()
        async with self._unit() as check:
            if await check.billing.event_seen(event_id):
                return []
        sub_id = _subscription_id(etype, obj)
        remote = await self.stripe.subscription(sub_id) if sub_id else None
        invoice = await self._reversed_invoice(etype, obj) if etype in REVERSALS else None
        hint = _int(_field(obj, "client_reference_id"))
        async with self._unit() as uow:
            if not await uow.billing.record_event(event_id, etype, now):
                return []  # processed meanwhile by another delivery
            notices: list[Notice] = []
            user_id: int | None = None
            if remote is not None:
                notices += await self._sync_stripe(uow, remote, now, hint=hint, quiet=etype == "invoice.paid")
                existing = await uow.billing.by_external(f"stripe:{remote.id}")
                user_id = existing.user_id if existing else None
            if etype in ("invoice.paid", "invoice.payment_failed") and user_id is not None:
                notices += await self._stripe_invoice(uow, etype, obj, user_id, remote, now)
            elif etype in REVERSALS and invoice is not None:
                reversal, user_id = await self._stripe_reversal(uow, etype, obj, invoice, now)
                notices += reversal
            elif etype == "customer.subscription.trial_will_end" and user_id is not None and remote is not None:
                notices.append(
                    await self._notice(uow, user_id, NoticeKind.TRIAL_ENDING, tier=remote.tier, until=remote.period_end)
                )
            await self._audit(uow, "billing.stripe_event", None, user_id, {"event": event_id, "type": etype})
            touched = await self._apply_tier(uow, user_id, now) if user_id is not None else []
            rewarded = (NoticeKind.REFERRAL_REWARD, NoticeKind.REFERRAL_REVOKED)
            for referrer in {n.user_id for n in notices if n.kind in rewarded}:
                touched += await self._apply_tier(uow, referrer, now)
            await self._commit(uow, notices)
        self._forget(touched)
        return notices

    async def _stripe_invoice(
        self, uow: UnitOfWork, etype: str, obj: Any, user_id: int, remote: StripeSubscription | None, now: datetime
    ) -> list[Notice]:
        paid = etype == "invoice.paid"
        invoice_id = str(_field(obj, "id"))
        external = f"stripe:{invoice_id}" if paid else f"stripe:{invoice_id}:failed"
        created = await uow.billing.add_payment(
            user_id=user_id, rail=Rail.STRIPE, kind="invoice", tier=remote.tier if remote else None,
            amount=int(_field(obj, "amount_paid" if paid else "amount_due") or 0),
            currency=str(_field(obj, "currency") or "usd").upper(), status="paid" if paid else "failed",
            external_id=external, now=now,
        )  # fmt: skip
        if not created or not paid:
            return []
        notices: list[Notice] = []
        if _field(obj, "billing_reason") == "subscription_cycle" and remote is not None:
            notices.append(
                await self._notice(uow, user_id, NoticeKind.RENEWED, tier=remote.tier, until=remote.period_end)
            )
        if int(_field(obj, "amount_paid") or 0) > 0:
            notices += await self._reward_referrer(uow, user_id, external, now)
        return notices

    async def _reversed_invoice(self, etype: str, obj: Any) -> str | None:
        """The invoice whose money a refunded charge or a dispute takes back (None: not one of ours).

        Fully refunded charges only: a partial refund leaves the payment, and what it earned, standing.
        The charge names its invoice in older API versions; otherwise Stripe's invoice payments tell.
        """
        if self.stripe is None or (etype == "charge.refunded" and not _field(obj, "refunded")):
            return None
        invoice = _ref(_field(obj, "invoice"))
        if invoice:
            return invoice
        intent = _ref(_field(obj, "payment_intent"))
        return await self.stripe.invoice_of_payment(intent) if intent else None

    async def _stripe_reversal(
        self, uow: UnitOfWork, etype: str, obj: Any, invoice: str, now: datetime
    ) -> tuple[list[Notice], int | None]:
        """A card payment refunded in full (``charge.refunded``) or disputed (``charge.dispute.created``):
        the payment is marked (a refund) and the referral reward it earned is taken back. The plan itself
        follows the subscription's own events."""
        external = f"stripe:{invoice}"
        payment = await uow.billing.payment(external, lock=True)
        if payment is None:
            return [], None
        if etype == "charge.refunded" and await uow.billing.mark_refunded(external, now):
            await self._audit(
                uow, "billing.refunded", None, payment.user_id, {"payment": external, "amount": payment.amount}
            )
        elif etype != "charge.refunded":
            await self._audit(uow, "billing.disputed", None, payment.user_id, {"payment": external})
        return await self._revoke_reward(uow, external, now), payment.user_id

    async def _sync_stripe(
        self,
        uow: UnitOfWork,
        remote: StripeSubscription,
        now: datetime,
        *,
        hint: int | None = None,
        quiet: bool = False,
    ) -> list[Notice]:
        """Make our row match Stripe's current view of the subscription; notices only for real transitions."""
        external = f"stripe:{remote.id}"
        existing = await uow.billing.by_external(external, lock=True)
        user_id = existing.user_id if existing else (remote.user_id or hint)
        tier = remote.tier if remote.tier in self._tiers and self._tiers.get(remote.tier or FREE).is_paid else None
        if user_id is None or remote.status is None or (tier is None and existing is None):
            return []
        if await uow.users.get(user_id) is None:
            log.warning("Stripe subscription %s names unknown user %s", remote.id, user_id)
            return []
        tier = tier or (existing.tier if existing else FREE)
        status = remote.status
        if existing is None:
            if status not in (Status.TRIALING, Status.ACTIVE, Status.PAST_DUE):
                return []  # ended before we ever saw it in force: nothing to grant
            created = await uow.billing.add_subscription(
                user_id=user_id, tier=tier, status=status, rail=Rail.STRIPE, external_id=external, now=now,
                current_period_end=remote.period_end, cancel_at_period_end=remote.cancel_at_period_end,
                customer_id=remote.customer, grace_until=now + GRACE if status == Status.PAST_DUE else None,
            )  # fmt: skip
            if created is None:  # a concurrent event for the same subscription created it and tells the user
                return []
            previous: Status | None = None
            was_canceling = False
        else:
            if not can_move(existing.status, status):
                log.info("ignoring Stripe move %s -> %s for %s", existing.status, status, remote.id)
                return []
            grace = (existing.grace_until or now + GRACE) if status == Status.PAST_DUE else None
            await uow.billing.update_subscription(
                existing.id, now, status=status, tier=tier, current_period_end=remote.period_end,
                cancel_at_period_end=remote.cancel_at_period_end, customer_id=remote.customer or existing.customer_id,
                grace_until=grace,
            )  # fmt: skip
            previous, was_canceling = existing.status, existing.cancel_at_period_end
            if existing.tier != tier and status == Status.ACTIVE and previous == Status.ACTIVE:
                return [await self._notice(uow, user_id, NoticeKind.ACTIVATED, tier=tier, until=remote.period_end)]
        if quiet and status == previous:
            return []
        if status != previous:
            if status == Status.ACTIVE:
                return [await self._notice(uow, user_id, NoticeKind.ACTIVATED, tier=tier, until=remote.period_end)]
            if status == Status.TRIALING:
                return [await self._notice(uow, user_id, NoticeKind.TRIAL_STARTED, tier=tier, until=remote.period_end)]
            if status == Status.PAST_DUE:
                sub = await uow.billing.by_external(external)
                grace_until = sub.grace_until if sub else now + GRACE
                return [
                    await self._notice(
                        uow, user_id, NoticeKind.PAYMENT_FAILED, tier=tier, until=grace_until, rail=Rail.STRIPE.value
                    )
                ]
            return [await self._notice(uow, user_id, NoticeKind.DOWNGRADED, tier=tier)]
        if remote.cancel_at_period_end != was_canceling and not quiet:
            kind = NoticeKind.CANCELED if remote.cancel_at_period_end else NoticeKind.RESUMED
            return [await self._notice(uow, user_id, kind, tier=tier, until=remote.period_end)]
        return []

    # --- referral rewards ---

    async def _reward_referrer(self, uow: UnitOfWork, payer_id: int, payment: str, now: datetime) -> list[Notice]:
        """The referrer earns Pro days on the referee's first real payment: once per referee, never for trials."""
        payer = await uow.users.get(payer_id)
        if payer is None or payer.referred_by is None or payer.referred_by == payer.id:
            return []
        if await uow.billing.paid_count(payer.id) != 1:
            return []
        referrer = await uow.users.get(payer.referred_by)
        if referrer is None:
            return []
        if not await uow.billing.add_reward(
            referee_id=payer.id, referrer_id=referrer.id, payment_id=payment, days=REWARD_DAYS, now=now
        ):
            return []
        external = f"referral:{referrer.id}"
        row = await uow.billing.by_external(external, lock=True)
        if row is None:
            until = now + timedelta(days=REWARD_DAYS)
            await uow.billing.add_subscription(
                user_id=referrer.id, tier=REWARD_TIER, status=Status.ACTIVE, rail=Rail.REFERRAL,
                external_id=external, now=now, current_period_end=until,
            )  # fmt: skip
        else:
            start = row.current_period_end if row.entitles(now) and row.current_period_end else now
            until = start + timedelta(days=REWARD_DAYS)
            await uow.billing.update_subscription(row.id, now, status=Status.ACTIVE, current_period_end=until)
        await self._audit(uow, "referral.rewarded", None, referrer.id, {"referee_id": payer.id, "days": REWARD_DAYS})
        await self._apply_tier(uow, referrer.id, now)
        return [
            Notice(referrer.id, referrer.locale, NoticeKind.REFERRAL_REWARD,
                   {"days": REWARD_DAYS, "tier": REWARD_TIER, "until": until, "friend": payer.first_name}),
            Notice(payer.id, payer.locale, NoticeKind.REFERRAL_THANKS, {"friend": referrer.first_name}),
        ]  # fmt: skip

    async def _revoke_reward(
        self, uow: UnitOfWork, payment: str, now: datetime, *, actor_id: int | None = None
    ) -> list[Notice]:
        """Take back the Pro days a refunded (or charged back) payment earned its payer's referrer: once (the
        reward row is marked, never deleted, so the referee cannot earn it again), audited, the referrer told.
        Returns the referrer's notice, or nothing when the payment funded no reward (or it was revoked before)."""
        reward = await uow.billing.reward_of_payment(payment, lock=True)
        if reward is None or not await uow.billing.revoke_reward(reward.id, now):
            return []
        row = await uow.billing.by_external(f"referral:{reward.referrer_id}", lock=True)
        until: datetime | None = None
        if row is not None and row.status in _LIVE and row.current_period_end is not None:
            end = row.current_period_end - timedelta(days=reward.days)  # rewards stack: remove this one's days
            if end > now:
                until = end
                await uow.billing.update_subscription(row.id, now, current_period_end=end)
            else:
                await uow.billing.update_subscription(row.id, now, status=Status.CANCELED, current_period_end=now)
        await self._audit(
            uow, "referral.revoked", actor_id, reward.referrer_id,
            {"reward": reward.id, "days": reward.days, "until": until.isoformat() if until else None},
        )  # fmt: skip
        await self._apply_tier(uow, reward.referrer_id, now)
        referrer = await uow.users.get(reward.referrer_id)
        locale = referrer.locale if referrer else "en"
        facts = {"days": reward.days, "tier": REWARD_TIER, "until": until}
        return [Notice(reward.referrer_id, locale, NoticeKind.REFERRAL_REVOKED, facts)]

    async def grant(self, uow: UnitOfWork, user_id: int, tier: str, until: datetime | None) -> None:
        """A staff grant: one subscription row per user, weighed with the paid ones (the best tier wins).

        ``tier`` free (or no end) revokes it. The caller commits and audits.
        """
        now = self._clock()
        external = f"grant:{user_id}"
        row = await uow.billing.by_external(external, lock=True)
        if tier == FREE or until is None:
            if row is not None and row.status is not Status.CANCELED:
                await uow.billing.update_subscription(row.id, now, status=Status.CANCELED, current_period_end=now)
        elif row is None:
            await uow.billing.add_subscription(
                user_id=user_id, tier=tier, status=Status.ACTIVE, rail=Rail.GRANT, external_id=external, now=now,
                current_period_end=until,
            )  # fmt: skip
        else:
            await uow.billing.update_subscription(row.id, now, tier=tier, status=Status.ACTIVE, current_period_end=until)
        await self._apply_tier(uow, user_id, now)

    # --- scheduled jobs ---

    async def run_due_jobs(self, now: datetime | None = None) -> list[Notice]:
        """Reminders, missed renewals, grace periods and expiries; safe to run any number of times."""
        now = now or self._clock()
        async with self._unit() as uow:
            live = await uow.billing.live()
        notices: list[Notice] = []
        for sub in live:
            try:
                if sub.rail == Rail.STRIPE and self._overdue(sub, now):
                    notices += await self._refresh_stripe(sub, now)
                notices += await self._due(sub.id, now)
            except Exception:
                log.exception("billing job failed for subscription %s", sub.id)
        return notices

    @staticmethod
    def _overdue(sub: Subscription, now: datetime) -> bool:
        """Whether the job would act on this subscription now (so Stripe's view is worth re-reading first)."""
        end = sub.current_period_end
        if sub.status == Status.PAST_DUE:
            return sub.grace_until is not None and sub.grace_until <= now
        if end is None:
            return False
        renewing = sub.status == Status.ACTIVE and not sub.cancel_at_period_end
        return end + RENEWAL_SLACK <= now if renewing else end <= now

    async def _refresh_stripe(self, sub: Subscription, now: datetime) -> list[Notice]:
        """Re-read a card subscription before acting on it: a lost webhook must not cost a paying user their plan."""
        if self.stripe is None or sub.external_id is None:
            return []
        remote = await self.stripe.subscription(sub.external_id.split(":", 1)[1])
        async with self._unit() as uow:
            notices = await self._sync_stripe(uow, remote, now)
            # unchanged: leave the tier to the job step, which tells the user about a downgrade
            touched = await self._apply_tier(uow, sub.user_id, now) if notices else []
            await self._commit(uow, notices)
        self._forget(touched)
        return notices

    async def _due(self, sub_id: int, now: datetime) -> list[Notice]:
        async with self._unit() as uow:
            sub = await uow.billing.subscription(sub_id, lock=True)
            if sub is None or sub.status not in _LIVE:
                return []
            notices: list[Notice] = []
            end = sub.current_period_end
            renews = sub.status == Status.ACTIVE and not sub.cancel_at_period_end and sub.rail != Rail.REFERRAL
            if (
                end is not None and now < end <= now + REMIND_BEFORE and sub.reminded_for != end
                and (sub.status == Status.TRIALING or renews)
            ):  # fmt: skip
                await uow.billing.update_subscription(sub.id, now, reminded_for=end)
                kind = NoticeKind.TRIAL_ENDING if sub.status == Status.TRIALING else NoticeKind.RENEWAL_SOON
                if kind == NoticeKind.RENEWAL_SOON or not await self._covered_after(uow, sub, end):
                    notices.append(
                        await self._notice(uow, sub.user_id, kind, tier=sub.tier, until=end, rail=sub.rail.value)
                    )
            new: Status | None = None
            grace: datetime | None = None
            if sub.status == Status.PAST_DUE and sub.grace_until is not None and sub.grace_until <= now:
                new = Status.EXPIRED
            elif end is not None and sub.status == Status.TRIALING and end <= now:
                new = Status.EXPIRED
            elif end is not None and sub.status == Status.ACTIVE and not renews and end <= now:
                new = Status.CANCELED if sub.cancel_at_period_end else Status.EXPIRED
            elif end is not None and renews and end + RENEWAL_SLACK <= now:
                new, grace = Status.PAST_DUE, end + GRACE
            if new is None:
                await self._commit(uow, notices)
                return notices
            await uow.billing.update_subscription(sub.id, now, status=new, grace_until=grace)
            await self._audit(
                uow, "billing.status", None, sub.user_id, {"subscription": sub.id, "from": sub.status, "to": new}
            )
            before = await uow.users.get(sub.user_id)
            touched = await self._apply_tier(uow, sub.user_id, now)
            after = await uow.users.get(sub.user_id)
            if new == Status.PAST_DUE:
                notices.append(
                    await self._notice(
                        uow, sub.user_id, NoticeKind.PAYMENT_FAILED, tier=sub.tier, until=grace, rail=sub.rail.value
                    )
                )
            elif before and after and self._rank(after.effective_tier(now)) < self._rank(before.tier):
                notices.append(
                    await self._notice(
                        uow, sub.user_id, NoticeKind.DOWNGRADED, tier=sub.tier, now_tier=after.effective_tier(now)
                    )
                )
            await self._commit(uow, notices)
        self._forget(touched)
        return notices

    async def _covered_after(self, uow: UnitOfWork, sub: Subscription, moment: datetime) -> bool:
        """Whether another subscription keeps the same tier (or better) past ``moment`` (a paid plan after a trial)."""
        return any(
            other.id != sub.id and other.entitles(moment) and self._rank(other.tier) >= self._rank(sub.tier)
            for other in await uow.billing.subscriptions_of(sub.user_id)
        )

    async def report_overage(self, now: datetime | None = None) -> int:
        """AI analyses beyond the daily quota of card subscribers → Stripe meter events, each usage event once."""
        if self.stripe is None:
            return 0
        now = now or self._clock()
        async with self._unit() as uow:
            customers = await uow.billing.stripe_customers()
        sent = 0
        for user_id, customer in customers.items():
            async with self._unit() as uow:
                user = await uow.users.get(user_id)
                if user is None:
                    continue
                quota = self._tiers.get(user.effective_tier(now)).quota(Quota.AI_PER_DAY)
                since = ai_day_start(now - OVERAGE_LOOKBACK)  # the quota's own days (domain/quotas.py)
                events = await uow.billing.unreported_usage(user_id, Quota.AI_PER_DAY.value, since)
            for event_id, at, value in _overage(events, quota):
                await self.stripe.meter_event(
                    event_name=METER_EVENT, customer=customer, value=value, identifier=event_id, at=at
                )
                async with self._unit() as uow:
                    await uow.billing.mark_reported(user_id, event_id, self._clock())
                    await uow.commit()
                sent += 1
        return sent

    # --- helpers ---

    def _rank(self, code: str) -> int:
        return self._tiers.get(code).rank

    def _best(self, subs: Iterable[Subscription], now: datetime) -> Subscription | None:
        entitled = [s for s in subs if s.entitles(now) and s.tier in self._tiers]
        return max(entitled, key=lambda s: (self._rank(s.tier), s.entitled_until()), default=None)

    async def _apply_tier(self, uow: UnitOfWork, user_id: int, now: datetime) -> list[int]:
        """Write the tier the user's subscriptions grant now; returns the user ids whose cache is stale."""
        user = await uow.users.get(user_id)
        if user is None:
            return []
        best = self._best(await uow.billing.subscriptions_of(user_id), now)
        tier, until = (best.tier, best.entitled_until()) if best else (FREE, None)
        if (user.tier, user.tier_expires_at) == (tier, until):
            return [user_id]
        await uow.users.update(user_id, tier=tier, tier_expires_at=until)
        await self._audit(
            uow, "billing.tier_changed", None, user_id,
            {"from": user.effective_tier(now), "to": tier, "until": until.isoformat() if until else None},
        )  # fmt: skip
        return [user_id]

    def _forget(self, user_ids: Iterable[int]) -> None:
        for user_id in set(user_ids):
            self._users.forget(user_id)

    async def _stars_sub(self, uow: UnitOfWork, user_id: int, tier: str) -> Subscription | None:
        subs = [s for s in await uow.billing.subscriptions_of(user_id) if s.rail == Rail.STARS and s.tier == tier]
        return subs[-1] if subs else None

    async def _notice(self, uow: UnitOfWork, user_id: int, kind: NoticeKind, **params: Any) -> Notice:
        user = await uow.users.get(user_id)
        return Notice(user_id, user.locale if user else "en", kind, params)

    @staticmethod
    async def _audit(
        uow: UnitOfWork, action: str, actor: int | None, user_id: int | None, details: dict[str, Any]
    ) -> None:
        details = {k: (v.value if hasattr(v, "value") else v) for k, v in details.items()}
        await uow.audit.append(
            AuditEntry(action, actor, user_id, Surface.SYSTEM if actor is None else Surface.CHAT, details)
        )

    def _sign(self, kind: str, code: str, user_id: int, amount: int) -> str:
        body = f"{kind}.{code}.{user_id}.{amount}.{secrets.token_hex(4)}"
        return f"{body}.{hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:24]}"

    def _verify(self, payload: str) -> _Payload | None:
        body, _, signature = (payload or "").rpartition(".")
        if not body or not signature.isascii():
            return None
        expected = [hmac.new(key, body.encode(), hashlib.sha256).hexdigest()[:24] for key in self._keys]
        if not any([hmac.compare_digest(signature, e) for e in expected]):
            return None
        parts = body.split(".")
        if len(parts) != 5 or parts[0] not in ("sub", "pack") or not parts[2].isdigit() or not parts[3].isdigit():
            return None
        return _Payload(parts[0], parts[1], int(parts[2]), int(parts[3]))


def _overage(events: list[tuple[str, datetime, int, bool]], quota: int) -> list[tuple[str, datetime, int]]:
    """Per quota day (the UTC day the quota itself counts), the part of each event beyond the quota that is
    not reported yet."""
    used: dict[object, int] = {}
    out: list[tuple[str, datetime, int]] = []
    for event_id, at, quantity, reported in events:
        day = ai_day(at)
        before = used.get(day, 0)
        used[day] = before + quantity
        over = min(quantity, used[day] - max(quota, before))
        if over > 0 and not reported:
            out.append((event_id, at, over))
    return out


def _field(obj: Any, key: str) -> Any:
    try:
        return obj[key]
    except (KeyError, TypeError):
        return None


def _ref(value: Any) -> str | None:
    """The id of a Stripe reference: a bare id, or the object when expanded."""
    if value is None or isinstance(value, str):
        return value or None
    found = _field(value, "id")
    return str(found) if found else None


def _int(value: Any) -> int | None:
    return int(value) if value is not None and str(value).isdigit() else None


def _subscription_id(etype: str, obj: Any) -> str | None:
    if etype.startswith("customer.subscription."):
        return str(_field(obj, "id"))
    sub = _field(obj, "subscription")
    if sub is None:  # newer API versions nest it under the invoice's parent
        details = _field(_field(obj, "parent"), "subscription_details")
        sub = _field(details, "subscription")
    if isinstance(sub, dict) or (sub is not None and not isinstance(sub, str)):
        sub = _field(sub, "id")
    return str(sub) if sub else None
