"""Support, feedback, compliance, admin and broadcast rules, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.billing.service import BillingService
from domain.admin import AdminService, NotAdmin, UnknownUser
from domain.broadcast import BroadcastNotFound, BroadcastService, Draft, EmptyAudience, Segment, parse_button
from domain.compliance import CURRENT, ComplianceService, Document
from domain.db.engine import create_engine, create_sessionmaker
from domain.db.repositories import load_tiers
from domain.db.uow import UnitOfWork
from domain.errors import InvalidInput
from domain.support.feedback import FeedbackService
from domain.support.tickets import SupportService, TicketClosed, TicketNotFound, response_time
from domain.tiers import TierCatalog
from domain.users import Profile, Role, User, UserService
from workers.broadcast import Pacer

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture
async def world(db_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(db_url)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session:
        tiers = TierCatalog(await load_tiers(session))
    users = UserService(tiers, admin_ids=frozenset({1}), support_ids=frozenset({2}), clock=lambda: NOW)
    people: dict[int, User] = {}
    async with UnitOfWork(sessionmaker) as uow:
        for uid in (1, 2, 10, 11):
            people[uid] = (await users.seen(uow, Profile(uid, f"N{uid}", f"u{uid}", "en"))).user
    yield sessionmaker, tiers, users, people
    await engine.dispose()


async def test_tickets_are_isolated_and_follow_their_lifecycle(world) -> None:  # type: ignore[no-untyped-def]
    sessionmaker, tiers, _users, p = world
    support = SupportService(clock=lambda: NOW)
    async with UnitOfWork(sessionmaker) as uow:
        ticket = await support.open(uow, p[10], tiers.get("pro"), "billing", "  charged twice  ")
        assert (ticket.priority, ticket.expected_response) == (2, timedelta(hours=8))
        with pytest.raises(TicketNotFound):
            await support.thread(uow, p[11], ticket.id)
        with pytest.raises(TicketNotFound):
            await support.user_reply(uow, p[11], ticket.id, "me too")
        with pytest.raises(TicketNotFound):
            await support.close(uow, p[11], ticket.id)
        with pytest.raises(TicketNotFound):
            await support.staff_reply(uow, p[11], ticket.id, "fake staff")
        with pytest.raises(TicketNotFound):
            await support.queue(uow, p[11], "open")
        with pytest.raises(InvalidInput):
            await support.open(uow, p[10], tiers.get("free"), "nonsense", "x")
        with pytest.raises(InvalidInput):
            await support.open(uow, p[10], tiers.get("free"), "other", "   ")
        answered = await support.staff_reply(uow, p[2], ticket.id, "refunded")
        assert (answered.status, answered.assignee_id) == ("answered", 2)
        assert [t.id for t in await support.queue(uow, p[2], "mine")] == [ticket.id]
        assert await support.queue(uow, p[2], "open") == []
        back = await support.user_reply(uow, p[10], ticket.id, "thanks")
        assert back.status == "open"
        closed = await support.close(uow, p[10], ticket.id)
        assert closed.status == "closed" and (await support.close(uow, p[10], ticket.id)).closed_at == closed.closed_at
        with pytest.raises(TicketClosed):
            await support.user_reply(uow, p[10], ticket.id, "again")
        assert (await support.reopen(uow, p[1], ticket.id)).status == "open"
        thread = await support.thread(uow, p[10], ticket.id)
        assert [m.text for m in thread.messages] == ["charged twice", "refunded", "thanks"]
        assert [m.from_staff for m in thread.messages] == [False, True, False]
        assert {u.id for u in await support.staff(uow)} == {1, 2}


def test_response_time_by_priority() -> None:
    assert [response_time(p).total_seconds() / 3600 for p in (0, 1, 2, 3, 9)] == [48, 24, 8, 2, 2]


async def test_feedback_summary(world) -> None:  # type: ignore[no-untyped-def]
    sessionmaker, _tiers, _users, p = world
    feedback = FeedbackService(clock=lambda: NOW)
    async with UnitOfWork(sessionmaker) as uow:
        await feedback.rate(uow, p[10], 5, "great")
        await feedback.rate(uow, p[11], 2)
        await feedback.request(uow, p[10], "dark mode")
        for bad in (0, 6):
            with pytest.raises(InvalidInput):
                await feedback.rate(uow, p[10], bad)
        summary = await feedback.summary(uow)
    assert (summary.ratings, summary.average, summary.by_rating) == (2, 3.5, {5: 1, 2: 1})
    assert (summary.requests, summary.recent_requests) == (1, ["dark mode"])


async def test_consent_versions(world, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    sessionmaker, _tiers, _users, p = world
    compliance = ComplianceService(clock=lambda: NOW)
    async with UnitOfWork(sessionmaker) as uow:
        assert not await compliance.trading_unlocked(uow, 10)
        status = await compliance.accept(uow, p[10], "risk")
        assert status.trading_unlocked and await compliance.trading_unlocked(uow, 10)
        await compliance.accept(uow, p[10], "risk")  # twice: one row
        assert len(await uow.consents.accepted(10)) == 1
        with pytest.raises(InvalidInput):
            await compliance.accept(uow, p[10], "cookies")
        monkeypatch.setitem(CURRENT, Document.RISK, "2099-01")
        assert not await compliance.trading_unlocked(uow, 10)  # the remembered answer was for the old version


async def test_admin_grants_need_an_admin_and_a_real_user(world) -> None:  # type: ignore[no-untyped-def]
    sessionmaker, tiers, users, p = world
    billing = BillingService(tiers, users, b"test", unit=lambda: UnitOfWork(sessionmaker), clock=lambda: NOW)
    admin = AdminService(users, tiers, billing, clock=lambda: NOW)
    async with UnitOfWork(sessionmaker) as uow:
        with pytest.raises(NotAdmin):
            await admin.grant_tier(uow, p[2], "10", "pro", 30)  # support staff cannot grant
        with pytest.raises(NotAdmin):
            await admin.set_role(uow, p[10], "11", "admin")
        with pytest.raises(UnknownUser):
            await admin.grant_tier(uow, p[1], "@ghost", "pro", 30)
        with pytest.raises(InvalidInput):
            await admin.grant_tier(uow, p[1], "10", "pro", 0)
        with pytest.raises(InvalidInput):
            await admin.set_role(uow, p[1], "1", "user")  # no self-demotion
        granted = await admin.grant_tier(uow, p[1], "@U10", "pro", 30)
        assert (granted.tier, granted.tier_expires_at) == ("pro", NOW + timedelta(days=30))
        promoted = await admin.set_role(uow, p[1], "11", "support")
        assert promoted.role == Role.SUPPORT
        card = await admin.card(uow, p[2], "10")
        assert card.effective_tier == "pro" and card.audit[0].action == "tier.granted"
        # The grant is a subscription row: billing recomputing the tier keeps it…
        await billing._apply_tier(uow, 10, NOW)
        assert (await uow.users.get(10)).tier == "pro"  # type: ignore[union-attr]
        # …and granting free revokes it.
        revoked = await admin.grant_tier(uow, p[1], "10", "free", 1)
        assert (revoked.tier, revoked.tier_expires_at) == ("free", None)


async def test_broadcast_start_is_admin_only_and_queues_once(world) -> None:  # type: ignore[no-untyped-def]
    sessionmaker, _tiers, _users, p = world
    broadcasts = BroadcastService(clock=lambda: NOW)
    async with UnitOfWork(sessionmaker) as uow:
        with pytest.raises(BroadcastNotFound):
            await broadcasts.create(uow, p[2], Draft("hi"))
        b = await broadcasts.create(uow, p[1], Draft("hi", segment=Segment(tier="enterprise")))
        with pytest.raises(EmptyAudience):
            await broadcasts.start(uow, p[1], b.id)
        b = await broadcasts.create(uow, p[1], Draft("hi"))
        assert (await broadcasts.start(uow, p[1], b.id)).total == 4
        assert (await broadcasts.start(uow, p[1], b.id)).total == 4
        with pytest.raises(InvalidInput):
            await broadcasts.create(uow, p[1], Draft(" "))


@pytest.mark.parametrize(
    ("text", "ok"),
    [("Read | https://x.io/a", True), ("Read|tg://resolve?domain=x", True), ("no pipe", False),
     ("| https://x.io", False), ("Read | ftp://x", False), ("Read | https://x.io/a b", False)],
)  # fmt: skip
def test_parse_button(text: str, ok: bool) -> None:
    if ok:
        assert parse_button(text)[0] == "Read"
    else:
        with pytest.raises(InvalidInput):
            parse_button(text)


async def test_pacer_spaces_messages_evenly() -> None:
    now = [100.0]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    pacer = Pacer(25.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        await pacer.wait()
    assert slept == [0.04] * 4  # 25 per second, whatever the caller's speed
    now[0] += 1.0  # idle: no catching up in a burst
    await pacer.wait()
    await pacer.wait()
    assert slept[-1] == 0.04 and len(slept) == 5
    await pacer.pause(3)  # flood control
    assert slept[-1] == 3
    with pytest.raises(ValueError):
        Pacer(0)
