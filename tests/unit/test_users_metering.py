import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from domain.db.engine import create_engine, create_sessionmaker
from domain.db.models import UsageEventRow
from domain.db.repositories import load_tiers
from domain.db.uow import SqlUsageStore, UnitOfWork
from domain.errors import InvalidInput
from domain.metering import Meter, UsageEvent, UsageKind
from domain.referrals import ReferralService
from domain.tiers import TierCatalog
from domain.users import CACHE_TTL, Profile, Role, UserService, parse_timezone


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def sessionmaker(db_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(db_url)
    yield create_sessionmaker(engine)
    await engine.dispose()


async def _catalog(sessionmaker) -> TierCatalog:  # type: ignore[no-untyped-def]
    async with sessionmaker() as s:
        return TierCatalog(await load_tiers(s))


def test_parse_timezone() -> None:
    assert parse_timezone("europe/madrid") == "Europe/Madrid"
    assert parse_timezone("Tokyo") == "Asia/Tokyo"
    assert parse_timezone("UTC+3") == "Etc/GMT-3"
    assert parse_timezone("-5") == "Etc/GMT+5"
    assert parse_timezone("gmt") == "UTC"
    for bad in ("", "Mars/Olympus", "UTC+15", "x" * 100):
        with pytest.raises(InvalidInput):
            parse_timezone(bad)


async def test_seeded_tiers_are_complete(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    tiers = await _catalog(sessionmaker)
    assert [t.code for t in tiers] == ["free", "basic", "pro", "enterprise"]
    assert [t.rate_per_minute for t in tiers] == sorted(t.rate_per_minute for t in tiers)
    for lower, higher in zip(list(tiers), list(tiers)[1:]):
        assert lower.features < higher.features  # each tier includes everything below it


async def test_user_created_once_and_last_seen_written_at_most_once_a_minute(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    users = UserService(await _catalog(sessionmaker), admin_ids=frozenset({7}), clock=clock)
    profile = Profile(42, "Ann", "ann", "ru-RU")
    async with UnitOfWork(sessionmaker) as uow:
        first = await users.seen(uow, profile)
    assert first.created and first.user.locale == "ru" and first.user.role is Role.USER
    clock.now += timedelta(seconds=20)
    async with UnitOfWork(sessionmaker) as uow:
        again = await users.seen(uow, profile)
        assert uow._session is None  # served from cache: no connection, no write
    assert not again.created
    users.forget(42)
    clock.now += timedelta(seconds=20)
    async with UnitOfWork(sessionmaker) as uow:
        await users.seen(uow, profile)
    async with UnitOfWork(sessionmaker) as uow:
        stored = await uow.users.get(42)
    assert stored is not None and stored.last_seen_at == first.user.last_seen_at  # 40 s: not rewritten
    clock.now += timedelta(seconds=25)
    async with UnitOfWork(sessionmaker) as uow:
        await users.seen(uow, profile)
        stored = await uow.users.get(42)
    assert stored is not None and stored.last_seen_at == clock.now
    async with UnitOfWork(sessionmaker) as uow:
        admin = await users.seen(uow, Profile(7, "Boss", None, None))
    assert admin.user.role is Role.ADMIN


async def test_profile_cache_holds_the_users_of_the_last_ttl_not_every_user_ever_seen(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    users = UserService(await _catalog(sessionmaker), clock=clock)
    for uid in range(1000, 1040):  # a wave of users, each seen once
        async with UnitOfWork(sessionmaker) as uow:
            await users.seen(uow, Profile(uid, "Wave", None, "en"))
    assert len(users._cache) == 40
    clock.now += CACHE_TTL + timedelta(seconds=1)  # all of them stale
    for uid in range(2000, 2030):  # the next users push the stale ones out as they come
        async with UnitOfWork(sessionmaker) as uow:
            await users.seen(uow, Profile(uid, "Next", None, "es"))
    assert len(users._cache) == 30
    async with UnitOfWork(sessionmaker) as uow:
        back = await users.seen(uow, Profile(1000, "Wave", None, "en"))  # a dropped user is read again, intact
        assert uow._session is not None
    assert not back.created and back.user.id == 1000 and back.user.locale == "en"


async def test_settings_are_validated_and_stored(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    users = UserService(await _catalog(sessionmaker))
    async with UnitOfWork(sessionmaker) as uow:
        user = (await users.seen(uow, Profile(5, "Bo", None, "en"))).user
        user = await users.set_language(uow, user, "es")
        user = await users.toggle_notification(uow, user, "news")
        with pytest.raises(InvalidInput):
            await users.set_language(uow, user, "xx")
        with pytest.raises(InvalidInput):
            await users.toggle_notification(uow, user, "nonsense")
    async with UnitOfWork(sessionmaker) as uow:
        stored = await uow.users.get(5)
    assert stored is not None and stored.language == "es" and stored.notifications["news"] is True


async def test_referral_first_touch_only(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    users = UserService(await _catalog(sessionmaker))
    referrals = ReferralService(users)
    async with UnitOfWork(sessionmaker) as uow:
        referrer = (await users.seen(uow, Profile(1, "Ref", None, None))).user
        newbie = (await users.seen(uow, Profile(2, "New", None, None))).user
        payload = f"ref_{referrer.referral_code}"
        assert (await referrals.attribute(uow, referrer, payload, new_user=True)).referred_by is None  # self
        assert (await referrals.attribute(uow, newbie, "ref_unknown1", new_user=True)).referred_by is None
        assert (await referrals.attribute(uow, newbie, payload, new_user=False)).referred_by is None  # not new
        attributed = await referrals.attribute(uow, newbie, payload, new_user=True)
        assert attributed.referred_by == 1
        other = (await users.seen(uow, Profile(3, "Other", None, None))).user
        again = await referrals.attribute(uow, attributed, f"ref_{other.referral_code}", new_user=True)
        assert again.referred_by == 1  # no re-attribution
        trail = await uow.audit.for_user(2)
    assert [e.action for e in trail] == ["referral.attributed"]


async def test_meter_counts_pending_and_stored_and_never_twice(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    clock = Clock()
    store = SqlUsageStore(sessionmaker)
    meter = Meter(store, clock)
    async with UnitOfWork(sessionmaker) as uow:
        await UserService(await _catalog(sessionmaker), clock=clock).seen(uow, Profile(9, "M", None, None))
    since = clock.now - timedelta(hours=1)
    meter.record(9, UsageKind.COMMAND, "help")
    meter.record(9, UsageKind.FEATURE, "ai_analysis", 2)
    meter.record(10, UsageKind.COMMAND, "help")
    assert await meter.used(9, UsageKind.FEATURE, "ai_analysis", since) == 2  # still in the buffer
    assert await meter.flush() == 3
    assert meter.pending == 0
    clock.now += timedelta(minutes=1)
    meter.record(9, UsageKind.COMMAND, "help")
    totals = await meter.totals(9, since)
    assert totals[("command", "help")] == 2 and totals[("feature", "ai_analysis")] == 2
    assert (await meter.totals(9, clock.now + timedelta(seconds=1)))[("command", "help")] == 0
    # A batch retried after an unknown outcome is stored once.
    event = UsageEvent("f" * 32, 9, UsageKind.COMMAND, "status", 1, clock.now)
    await store.write([event])
    await store.write([event])
    async with sessionmaker() as s:
        count = await s.scalar(select(func.count()).select_from(UsageEventRow).where(UsageEventRow.name == "status"))
    assert count == 1


async def test_failed_flush_keeps_events() -> None:
    class Broken:
        async def write(self, events: list[UsageEvent]) -> None:
            raise ConnectionError("db down")

        async def totals(self, user_id, since, until):  # type: ignore[no-untyped-def]
            return {}

    meter = Meter(Broken())
    meter.record(1, UsageKind.COMMAND, "help")
    assert await meter.flush() == 0
    assert meter.pending == 1


async def test_quota_claims_hold_under_concurrency_across_processes(sessionmaker) -> None:  # type: ignore[no-untyped-def]
    """Two meters stand for two processes (on SQLite, one process's meter is all there is)."""
    clock = Clock()
    since = clock.now - timedelta(hours=1)
    multi = sessionmaker.kw["bind"].dialect.name == "postgresql"
    meters = [Meter(SqlUsageStore(sessionmaker), clock) for _ in range(2 if multi else 1)]
    claims = await asyncio.gather(
        *(meters[i % len(meters)].claim(7, UsageKind.FEATURE, "ai_per_day", since, 3) for i in range(12))
    )
    granted = [c for c in claims if c is not None]
    assert sorted(c.used for c in granted) == [1, 2, 3]
    assert await meters[0].used(7, UsageKind.FEATURE, "ai_per_day", since) == 3
    await meters[-1].refund(granted[0])  # a failed analysis gives its use back
    again = await meters[0].claim(7, UsageKind.FEATURE, "ai_per_day", since, 3)
    assert again is not None and again.used == 3
    assert await meters[0].claim(7, UsageKind.FEATURE, "ai_per_day", since, 3) is None
    assert await meters[0].claim(8, UsageKind.FEATURE, "ai_per_day", since, 3) is not None  # per user
