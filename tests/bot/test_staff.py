"""Staff commands: invisible and inert for everyone else; role grants, tier grants, user card, dashboard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.runner import set_commands
from bot.settings import Settings
from bot.views.feedback import FeedbackCB
from bot.views.staff import BroadcastCB
from bot.views.support import SupportCB, TicketsCB
from domain.broadcast import Status
from domain.db.models import AuditRow, ErrorEventRow
from domain.db.uow import UnitOfWork
from domain.users import Role
from tests.fakes.telegram import FakeTelegram
from tests.harness import Harness, build_harness
from workers.broadcast import BroadcastSender

ADMIN, AGENT, ANN, BOB = 9001, 9002, 1001, 1002
STAFF_COMMANDS = ("/tickets", "/user 1001", "/grant 1001 pro 30", "/role 1002 admin", "/admin")


@pytest.fixture
async def staffed(stack: Settings, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    settings = stack.model_copy(update={"admin_ids": frozenset({ADMIN}), "support_ids": frozenset({AGENT})})
    h = await build_harness(settings, telegram)
    await h.send("/start", user=ADMIN)
    await h.send("/start", user=AGENT)
    yield h
    await h.close()


async def _ticket(h: Harness, user: int = ANN) -> int:
    await h.send("/support", user=user)
    await h.press(SupportCB(action="new").pack(), user=user)
    await h.press(SupportCB(action="cat", value="other").pack(), user=user)
    await h.send("help me please", user=user)
    async with UnitOfWork(h.app.sessionmaker) as uow:
        return (await uow.tickets.of_user(user, 1))[0].id


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_staff_commands_look_unknown_to_users(staffed: Harness, lang: str) -> None:
    unknown = {"en": "I don't know the command", "ru": "Я не знаю команду"}[lang]
    for text in STAFF_COMMANDS:
        calls = await staffed.send(text, user=ANN, lang=lang)
        assert len(calls) == 1 and unknown in calls[0].text, text
    for text in ("/grant 1001 pro 30", "/role 1002 admin", "/admin"):  # admin-only: support staff don't see them either
        calls = await staffed.send(text, user=AGENT)
        assert "I don't know the command" in calls[0].text, text
    assert (await staffed.stored_user(ANN)).tier == "free"  # type: ignore[union-attr]
    assert (await staffed.stored_user(BOB)) is None or (await staffed.stored_user(BOB)).role == Role.USER  # type: ignore[union-attr]
    help_text = (await staffed.send("/help", user=ADMIN))[0].text
    assert "/tickets" not in help_text and "/admin" not in help_text


async def test_forged_staff_buttons_change_nothing(staffed: Harness) -> None:
    h = staffed
    number = await _ticket(h)
    stale = "This button has expired"
    for action in ("queue", "view", "take", "reply", "close", "reopen", "files"):
        calls = await h.press(TicketsCB(action=action, id=number).pack(), user=BOB)
        assert len(calls) == 1 and calls[0].method == "answerCallbackQuery" and stale in calls[0].text, action
    # a user who got into the staff reply step by other means still can't answer
    calls = await h.send("I answer myself", user=BOB)
    async with UnitOfWork(h.app.sessionmaker) as uow:
        ticket = await uow.tickets.get(number)
        texts = [m.text for m in await uow.tickets.messages(number)]
    assert ticket is not None and ticket.status == "open" and ticket.assignee_id is None
    assert texts == ["help me please"]
    assert not [c for c in h.telegram.calls if c.method == "sendPhoto"]


async def test_command_menus_per_scope(staffed: Harness) -> None:
    h = staffed
    before = len(h.telegram.calls)
    await set_commands(h.bot, h.app.registry, h.app)
    calls = [c for c in h.telegram.calls[before:] if c.method == "setMyCommands"]
    default = [c for c in calls if c.params["scope"]["type"] == "default"]
    assert len(default) == 3
    for call in default:
        names = {c["command"] for c in call.params["commands"]}
        assert "support" in names and not names & {"tickets", "user", "grant", "role", "admin"}
    chats: dict[int, set[str]] = {}
    for call in calls:
        if call.params["scope"]["type"] == "chat":
            chats.setdefault(int(call.params["scope"]["chat_id"]), set()).update(c["command"] for c in call.params["commands"])
    assert chats[ADMIN] >= {"tickets", "user", "grant", "role", "admin", "support"}
    assert chats[AGENT] >= {"tickets", "user"} and not chats[AGENT] & {"grant", "role", "admin"}
    assert ANN not in chats
    ru = [c for c in calls if c.params["scope"]["type"] == "chat" and c.params.get("language_code") == "ru"]
    assert any(c["description"] == "Очередь поддержки" for call in ru for c in call.params["commands"])


async def test_admin_grants_and_revokes_roles(staffed: Harness) -> None:
    h = staffed
    await h.send("/start", user=ANN)
    before = len(h.telegram.calls)
    reply = await h.send("/role @user1001 support", user=ADMIN)
    assert "is now support" in [c for c in reply if c.method == "sendMessage"][0].text
    scoped = [c for c in h.telegram.calls[before:] if c.method == "setMyCommands"]
    assert scoped and all(int(c.params["scope"]["chat_id"]) == ANN for c in scoped)
    assert "Tickets" in (await h.send("/tickets", user=ANN))[0].text
    await h.send("/role 1001 user", user=ADMIN)
    assert any(c.method == "deleteMyCommands" for c in h.telegram.calls[before:])
    assert "I don't know the command" in (await h.send("/tickets", user=ANN))[0].text
    async with UnitOfWork(h.app.sessionmaker) as uow:
        actions = [(e.action, e.actor_id, e.details.get("role")) for e in await uow.audit.for_user(ANN)]
    assert ("role.granted", ADMIN, "support") in actions and ("role.revoked", ADMIN, "user") in actions
    assert "ADM-NO-USER" in (await h.send("/role @nobody admin", user=ADMIN))[0].text
    assert "Usage" in (await h.send("/role 1001", user=ADMIN))[0].text


async def test_grant_tier_is_audited_and_seen_at_once(staffed: Harness) -> None:
    h = staffed
    assert "Your plan: <b>Free</b>" in (await h.send("/start", user=ANN))[0].text
    done = await h.send("/grant 1001 pro 30", user=ADMIN)
    assert "now has the Pro plan" in done[0].text
    assert "Your plan: <b>Pro</b>" in (await h.send("/start", user=ANN))[0].text  # the profile cache was dropped
    async with UnitOfWork(h.app.sessionmaker) as uow:
        entry = (await uow.audit.for_user(ANN))[0]
    assert (entry.action, entry.actor_id, entry.details["tier"], entry.details["days"]) == ("tier.granted", ADMIN, "pro", 30)
    assert "INP-INVALID" in (await h.send("/grant 1001 platinum 30", user=ADMIN))[0].text
    assert "Usage" in (await h.send("/grant 1001 pro", user=ADMIN))[0].text


async def test_user_card_shows_profile_tickets_and_activity(staffed: Harness) -> None:
    h = staffed
    await _ticket(h)
    card = (await h.send("/user @USER1001", user=AGENT))[0].text
    assert "User 1001" in card and "@user1001" in card and "help me please" in card and "ticket.opened" in card
    assert "Free" in card
    assert "ADM-NO-USER" in (await h.send("/user 424242", user=AGENT))[0].text
    assert "Usage" in (await h.send("/user", user=AGENT))[0].text


async def test_feedback_flow_and_admin_dashboard(staffed: Harness) -> None:
    h = staffed
    home = await h.send("/feedback", user=ANN, lang="es")
    assert "Valóralo de 1 a 5" in home[0].text
    await h.press(FeedbackCB(action="rate", value=4).pack(), user=ANN, lang="es")
    thanks = await h.send("muy bien", user=ANN, lang="es")
    assert "Gracias por tu valoración" in thanks[0].text
    await h.send("/feedback", user=BOB)
    await h.press(FeedbackCB(action="rate", value=2).pack(), user=BOB)
    await h.press(FeedbackCB(action="skip").pack(), user=BOB)
    await h.send("/feedback", user=BOB)
    await h.press(FeedbackCB(action="request").pack(), user=BOB)
    assert "suggestion is recorded" in (await h.send("Dark <mode> please", user=BOB))[0].text
    await _ticket(h)
    async with UnitOfWork(h.app.sessionmaker) as uow:
        uow.session.add(ErrorEventRow(at=datetime.now(UTC), code="TRD-NO-MONEY", ref="R1", user_hash=None, context="x", message="m"))
        uow.session.add(ErrorEventRow(at=datetime.now(UTC), code="TRD-NO-MONEY", ref="R2", user_hash=None, context="x", message="m"))
        await uow.users.update(BOB, tier="basic", tier_expires_at=None)
        await uow.commit()
    board = (await h.send("/admin", user=ADMIN))[0].text
    assert "Admin dashboard" in board
    assert "Users</b>: 4" in board and "• Free: 3" in board and "• Basic: 1" in board
    assert "New: 4 in 7 days" in board and "Active: 4 in 7 days" in board
    assert "<code>TRD-NO-MONEY</code>: 2" in board
    assert "Open tickets: 1" in board
    assert "Ratings: 2, average 3.00" in board and "Feature requests: 1" in board and "Dark &lt;mode&gt; please" in board
    assert "MRR: $0.00" in board


async def test_broadcast_compose_preview_confirm_and_deliver(staffed: Harness) -> None:
    h = staffed
    await h.send("/start", user=ANN, lang="ru")
    await h.send("/start", user=BOB)
    assert "New broadcast" in (await h.send("/broadcast", user=ADMIN))[0].text
    ask_button = await h.send("Big <news> today", user=ADMIN)
    assert "link button" in ask_button[0].text
    assert "INP-INVALID" in (await h.send("no url here", user=ADMIN))[0].text  # still on the button step
    segment = await h.send("Read more | https://example.com/news", user=ADMIN)
    assert "Recipients now: 4" in segment[0].text  # Ann, Bob and the two staff members
    ru = await h.press(BroadcastCB(action="lang", value="ru").pack(), user=ADMIN)
    assert "Recipients now: 1" in ru[0].text
    calls = await h.press(BroadcastCB(action="preview").pack(), user=ADMIN)
    preview, confirm = [c for c in calls if c.method == "sendMessage"]
    assert preview.text == "Big &lt;news&gt; today" and preview.buttons == [("Read more", None)]
    assert "Send it to 1 user?" in confirm.text
    send_data = confirm.buttons[0][1]
    for user in (BOB, AGENT):  # not admins: the button is stale for them and nothing is queued
        pressed = await h.press(send_data, user=user)
        assert "This button has expired" in pressed[0].text
    async with UnitOfWork(h.app.sessionmaker) as uow:
        assert (await uow.broadcasts.get(1)).status == Status.DRAFT  # type: ignore[union-attr]
    queued = await h.press(send_data, user=ADMIN, message_id=321)
    assert "queued for 1 user" in queued[0].text
    await h.press(send_data, user=ADMIN, message_id=321)  # a double tap queues nothing more
    async with UnitOfWork(h.app.sessionmaker) as uow:
        assert await uow.broadcasts.counts(1) == {"pending": 1}
    before = len(h.telegram.calls)
    await BroadcastSender(h.app.sessionmaker, h.bot, h.app.i18n, rate=1000).run_once()
    calls = h.telegram.calls[before:]
    delivered = [c for c in calls if c.method == "sendMessage" and int(c.params["chat_id"]) == ANN]
    assert len(delivered) == 1 and delivered[0].text == "Big &lt;news&gt; today"
    progress = [c for c in calls if c.method == "editMessageText" and int(c.params["chat_id"]) == ADMIN]
    assert progress and int(progress[-1].params["message_id"]) == 321 and "Delivered: 1 of 1" in progress[-1].text
    async with UnitOfWork(h.app.sessionmaker) as uow:
        started = (await uow.session.scalars(select(AuditRow).where(AuditRow.action == "broadcast.started"))).one()
    assert started.actor_id == ADMIN and started.details["recipients"] == 1 and started.details["segment"]["language"] == "ru"
