"""Billing domain: the state machine, signed Stars payloads, trials in the DB, overage to Stripe meter events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert

from domain.billing.model import GRACE, PaymentProviderDown, Rail, Status, Subscription, TrialUsed, can_move
from domain.billing.service import BillingService, _overage
from domain.billing.stripe import StripeGateway
from domain.db.engine import create_engine, create_sessionmaker
from domain.db.models import UsageEventRow
from domain.db.repositories import load_tiers
from domain.db.uow import UnitOfWork
from domain.tiers import TierCatalog
from domain.users import Profile, User, UserService
from tests.fakes.stripe import PRICES, SECRET_KEY, FakeStripe

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def _sub(
    status: Status, *, rail: Rail = Rail.STARS, cancel: bool = False, grace: datetime | None = None
) -> Subscription:
    return Subscription(1, 1, "pro", status, rail, "x:1", NOW, cancel, None, grace, None, NOW, NOW)


def test_state_machine() -> None:
    assert can_move(None, Status.TRIALING) and can_move(Status.TRIALING, Status.ACTIVE)
    assert can_move(Status.ACTIVE, Status.PAST_DUE) and can_move(Status.PAST_DUE, Status.EXPIRED)
    assert can_move(Status.PAST_DUE, Status.ACTIVE)  # payment recovered within grace
    assert not can_move(Status.CANCELED, Status.TRIALING)
    assert not can_move(Status.EXPIRED, Status.PAST_DUE)
    assert not can_move(None, Status.CANCELED)


def test_entitlement_per_status() -> None:
    assert _sub(Status.TRIALING).entitled_until() == NOW
    assert _sub(Status.ACTIVE).entitled_until() == NOW + GRACE  # renewal slack
    assert _sub(Status.ACTIVE, cancel=True).entitled_until() == NOW  # canceled: ends with the period
    assert _sub(Status.PAST_DUE, grace=NOW + GRACE).entitled_until() == NOW + GRACE
    assert _sub(Status.CANCELED).entitled_until() is None and not _sub(Status.EXPIRED).entitles(NOW)


def test_overage_counts_only_beyond_the_daily_quota_once() -> None:
    day1 = [(f"e{i}", NOW + timedelta(minutes=i), 1, False) for i in range(5)]
    day2 = [("d2", NOW + timedelta(days=1), 2, False)]
    assert _overage(day1 + day2, 3) == [("e3", day1[3][1], 1), ("e4", day1[4][1], 1)]
    reported = [(*e[:3], e[0] == "e3") for e in day1]
    assert _overage(reported, 3) == [("e4", day1[4][1], 1)]
    assert _overage([("big", NOW, 5, False)], 3) == [("big", NOW, 2)]


def test_overage_days_are_the_quota_days_whatever_the_zone_of_the_timestamps() -> None:
    """The overage counts the UTC days the quota counts: events stamped in any zone fall on the same day."""
    tokyo = ZoneInfo("Asia/Tokyo")
    late = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # 08:30 on the 3rd in Tokyo: still the 2nd's quota
    events = [(f"t{i}", (late + timedelta(minutes=i)).astimezone(tokyo), 1, False) for i in range(4)]
    events.append(("next", datetime(2026, 3, 3, 0, 5, tzinfo=UTC), 1, False))
    assert _overage(events, 3) == [("t3", events[3][1], 1)]


@pytest.fixture
async def env(db_url: str) -> AsyncIterator[tuple[BillingService, UserService, object, Clock]]:
    engine = create_engine(db_url)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as s:
        tiers = TierCatalog(await load_tiers(s))
    clock = Clock()
    users = UserService(tiers, clock=clock)
    fake = await FakeStripe().start()
    gateway = StripeGateway(SECRET_KEY, PRICES, api_base=fake.url)
    service = BillingService(tiers, users, b"k", unit=lambda: UnitOfWork(sessionmaker), stripe=gateway, clock=clock)
    yield service, users, (sessionmaker, fake), clock
    await gateway.close()
    await fake.stop()
    await engine.dispose()


async def _user(users: UserService, sessionmaker: object, user_id: int) -> User:
    async with UnitOfWork(sessionmaker) as uow:  # type: ignore[arg-type]
        return (await users.seen(uow, Profile(user_id, "Ann", None, "en"))).user


def test_stars_payload_is_signed_and_bound_to_user_and_price() -> None:
    from domain.tiers import Tier

    tiers = TierCatalog([Tier("free", 0, 0, 0, 30, 10, {}), Tier("pro", 2, 2999, 1500, 120, 30, {})])
    service = BillingService(tiers, UserService(tiers), b"secret", unit=lambda: None)  # type: ignore[arg-type,return-value]
    other = BillingService(tiers, UserService(tiers), b"other", unit=lambda: None)  # type: ignore[arg-type,return-value]
    user = _fake_user(1)
    invoice = service.stars_invoice(user, "pro")
    assert invoice.amount == 1500 and invoice.subscription_period == 2592000 and len(invoice.payload) <= 128
    assert service.check_pre_checkout(user, invoice.payload, "XTR", 1500) is None
    assert service.check_pre_checkout(_fake_user(2), invoice.payload, "XTR", 1500) == "payload"
    assert service.check_pre_checkout(user, invoice.payload, "XTR", 1499) == "price"
    assert service.check_pre_checkout(user, invoice.payload, "USD", 1500) == "price"
    assert service.check_pre_checkout(user, invoice.payload.replace("pro", "ent"), "XTR", 1500) == "payload"
    assert other.check_pre_checkout(user, invoice.payload, "XTR", 1500) == "payload"  # another key
    assert service.check_pre_checkout(user, "garbage", "XTR", 1500) == "payload"
    forged = invoice.payload.rsplit(".", 1)[0] + ".ééééééééééééééééééééééé"  # non-ASCII mac: refused, not a TypeError
    assert service.check_pre_checkout(user, forged, "XTR", 1500) == "payload"


def test_invoices_signed_before_a_key_rotation_stay_payable() -> None:
    from domain.tiers import Tier

    tiers = TierCatalog([Tier("free", 0, 0, 0, 30, 10, {}), Tier("pro", 2, 2999, 1500, 120, 30, {})])
    before = BillingService(tiers, UserService(tiers), b"old-key", unit=lambda: None)  # type: ignore[arg-type,return-value]
    after = BillingService(tiers, UserService(tiers), b"new-key", unit=lambda: None, old_secrets=[b"old-key"])  # type: ignore[arg-type,return-value]
    user = _fake_user(1)
    pending = before.stars_invoice(user, "pro").payload  # opened before the rotation, paid after it
    assert after.check_pre_checkout(user, pending, "XTR", 1500) is None
    fresh = after.stars_invoice(user, "pro").payload
    assert before.check_pre_checkout(user, fresh, "XTR", 1500) == "payload"  # new invoices use the new key


def _fake_user(user_id: int) -> User:
    from domain.users import Role

    return User(user_id, "Ann", None, None, "en", "UTC", Role.USER, "free", None, "code1234", None, {}, NOW, NOW)


async def test_one_trial_per_user_enforced(env) -> None:  # type: ignore[no-untyped-def]
    service, users, (sessionmaker, _fake), _clock = env
    user = await _user(users, sessionmaker, 5)
    async with UnitOfWork(sessionmaker) as uow:
        assert [n.kind for n in await service.start_trial(uow, user)] == ["trial_started"]
    async with UnitOfWork(sessionmaker) as uow:
        with pytest.raises(TrialUsed):
            await service.start_trial(uow, user)
    async with UnitOfWork(sessionmaker) as uow:  # even bypassing the check, the unique key holds
        again = await uow.billing.add_subscription(
            user_id=5, tier="pro", status=Status.TRIALING, rail=Rail.TRIAL, external_id="trial:5", now=NOW
        )
        assert again is None


async def test_overage_reported_once_and_resumed_after_a_failure(env) -> None:  # type: ignore[no-untyped-def]
    service, users, (sessionmaker, fake), clock = env
    await _user(users, sessionmaker, 7)
    async with UnitOfWork(sessionmaker) as uow:
        await uow.billing.add_subscription(
            user_id=7, tier="basic", status=Status.ACTIVE, rail=Rail.STRIPE, external_id="stripe:sub_7", now=NOW,
            current_period_end=NOW + timedelta(days=20), customer_id="cus_7",
        )  # fmt: skip
        await uow.users.update(7, tier="basic", tier_expires_at=NOW + timedelta(days=23))
        rows = [
            {"id": f"u{i:02d}", "user_id": 7, "kind": "feature", "name": "ai_analysis", "quantity": 1,
             "at": NOW - timedelta(hours=2) + timedelta(seconds=i)}
            for i in range(25)
        ]  # fmt: skip
        await uow.session.execute(insert(UsageEventRow), rows)
        await uow.commit()
    fake.fail_next = 3 * 5  # the first event fails even after the SDK's retries
    with pytest.raises(PaymentProviderDown):
        await service.report_overage()
    assert fake.meter_events == {}
    fake.fail_next = 0
    assert await service.report_overage() == 5  # basic allows 20 a day: 5 over
    assert sorted(fake.meter_events) == [f"u{i}" for i in range(20, 25)]
    event = fake.meter_events["u20"]
    assert (
        event["payload"] == {"stripe_customer_id": "cus_7", "value": "1"}
        and event["event_name"] == "ai_analysis_overage"
    )
    calls = len(fake.made("/v1/billing/meter_events"))
    assert await service.report_overage() == 0 and len(fake.made("/v1/billing/meter_events")) == calls  # never twice


def test_subscription_id_from_each_event_shape() -> None:
    from domain.billing.service import _subscription_id

    assert _subscription_id("customer.subscription.updated", {"id": "sub_1"}) == "sub_1"
    assert _subscription_id("checkout.session.completed", {"id": "cs_1", "subscription": "sub_2"}) == "sub_2"
    assert _subscription_id("invoice.paid", {"id": "in_1", "subscription": None, "parent": {
        "subscription_details": {"subscription": "sub_3"}}}) == "sub_3"  # fmt: skip
    assert _subscription_id("checkout.session.completed", {"id": "cs_2", "subscription": None}) is None
