"""/support and /tickets as users and staff meet them: the full ticket round trip in three languages, isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiogram.types import Chat, Document, Message, PhotoSize, User as TgUser

from bot.settings import Settings
from bot.views.support import SupportCB, TicketsCB
from domain.db.uow import UnitOfWork
from tests.fakes.telegram import BOT_ID, FakeTelegram
from tests.harness import Harness, build_harness

ADMIN, AGENT, ANN, BOB = 9001, 9002, 1001, 1002


@pytest.fixture
async def staffed(stack: Settings, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    settings = stack.model_copy(update={"admin_ids": frozenset({ADMIN}), "support_ids": frozenset({AGENT})})
    h = await build_harness(settings, telegram)
    await h.send("/start", user=ADMIN)
    await h.send("/start", user=AGENT)
    yield h
    await h.close()


def to(calls: list, chat: int, method: str = "sendMessage") -> list:  # type: ignore[type-arg]
    return [c for c in calls if c.method == method and int(c.params.get("chat_id", 0)) == chat]


async def open_ticket(h: Harness, text: str, *, user: int = ANN, lang: str = "en", category: str = "trading") -> int:
    await h.send("/support", user=user, lang=lang)
    await h.press(SupportCB(action="new").pack(), user=user, lang=lang)
    await h.press(SupportCB(action="cat", value=category).pack(), user=user, lang=lang)
    calls = await h.send(text, user=user, lang=lang)
    async with UnitOfWork(h.app.sessionmaker) as uow:
        tickets = await uow.tickets.of_user(user, 10)
    assert calls and tickets
    return tickets[0].id


def bot_message(text: str, chat: int) -> Message:
    return Message(
        message_id=777, date=datetime.now(UTC), chat=Chat(id=chat, type="private"),
        from_user=TgUser(id=BOT_ID, is_bot=True, first_name="Hybrid Trader"), text=text,
    )  # fmt: skip


OPENED = {"en": "is open", "ru": "открыт", "es": "está abierto"}
EXPECTED = {"en": "within 48 hours", "ru": "в течение 48 часов", "es": "en 48 horas"}
ANSWER = {"en": "Support replied to ticket", "ru": "Поддержка ответила по обращению", "es": "Soporte respondió al ticket"}
CLOSED = {"en": "is closed", "ru": "закрыт", "es": "está cerrado"}


@pytest.mark.parametrize("lang", ["en", "ru", "es"])
async def test_ticket_round_trip(staffed: Harness, lang: str) -> None:
    h = staffed
    await h.send("/support", user=ANN, lang=lang)
    await h.press(SupportCB(action="new").pack(), user=ANN, lang=lang)
    await h.press(SupportCB(action="cat", value="trading").pack(), user=ANN, lang=lang)
    calls = await h.send("My order to buy EURUSD failed", user=ANN, lang=lang)
    mine = to(calls, ANN)
    assert OPENED[lang] in mine[0].text and EXPECTED[lang] in mine[0].text
    number = int(mine[0].text.split("#")[1].split("<")[0])
    # the staff hear about it (both the agent and the admin), in their own language
    new = to(calls, AGENT)
    assert new and f"#{number}" in new[0].text and "My order to buy EURUSD failed" in new[0].text
    assert to(calls, ADMIN)

    queue = await h.send("/tickets", user=AGENT)
    assert f"#{number}" in queue[0].text
    assert TicketsCB(action="view", id=number).pack() in [d for _, d in queue[0].buttons]
    thread = await h.press(TicketsCB(action="view", id=number).pack(), user=AGENT)
    assert "My order to buy EURUSD failed" in thread[0].text
    await h.press(TicketsCB(action="reply", id=number).pack(), user=AGENT)
    calls = await h.send("Please retry <now>", user=AGENT)
    delivered = to(calls, ANN)
    assert len(delivered) == 1 and ANSWER[lang] in delivered[0].text and "Please retry &lt;now&gt;" in delivered[0].text
    assert "Answer sent" in to(calls, AGENT)[0].text

    # the user answers by replying to the bot's message (Telegram reply) ...
    calls = await h.send("Still failing", user=ANN, lang=lang, reply_to_message=bot_message(delivered[0].text, ANN))
    assert to(calls, AGENT) and "Still failing" in to(calls, AGENT)[0].text  # the assignee hears
    assert not to(calls, ADMIN)  # an assigned ticket concerns its assignee only
    # ... and with the button
    await h.press(SupportCB(action="reply", id=number).pack(), user=ANN, lang=lang)
    await h.send("Screenshot attached", user=ANN, lang=lang)
    async with UnitOfWork(h.app.sessionmaker) as uow:
        texts = [m.text for m in await uow.tickets.messages(number)]
    assert texts == ["My order to buy EURUSD failed", "Please retry <now>", "Still failing", "Screenshot attached"]

    # the user closes; staff reopen; staff close, and the user is told
    closed = await h.press(SupportCB(action="close", id=number).pack(), user=ANN, lang=lang)
    assert CLOSED[lang] in closed[0].text
    await h.press(TicketsCB(action="reopen", id=number).pack(), user=AGENT)
    calls = await h.press(TicketsCB(action="close", id=number).pack(), user=AGENT)
    assert CLOSED[lang] in to(calls, ANN)[0].text
    async with UnitOfWork(h.app.sessionmaker) as uow:
        ticket = await uow.tickets.get(number)
        actions = [e.action for e in await uow.audit.for_user(ANN, 20)]
    assert ticket is not None and ticket.status == "closed" and ticket.assignee_id == AGENT
    for action in ("ticket.opened", "ticket.answered", "ticket.closed", "ticket.reopened"):
        assert action in actions


async def test_attachment_is_kept_and_staff_can_fetch_it(staffed: Harness) -> None:
    h = staffed
    await h.send("/support", user=ANN)
    await h.press(SupportCB(action="new").pack(), user=ANN)
    await h.press(SupportCB(action="cat", value="technical").pack(), user=ANN)
    photo = [PhotoSize(file_id="small", file_unique_id="s", width=90, height=90),
             PhotoSize(file_id="big-photo-id", file_unique_id="b", width=900, height=900)]  # fmt: skip
    calls = await h.send(None, user=ANN, photo=photo, caption="The chart is blank")
    assert "#" in to(calls, ANN)[0].text
    async with UnitOfWork(h.app.sessionmaker) as uow:
        number = (await uow.tickets.of_user(ANN, 1))[0].id
        message = (await uow.tickets.messages(number))[0]
    assert (message.file_id, message.file_kind, message.text) == ("big-photo-id", "photo", "The chart is blank")
    doc = Document(file_id="log-file-id", file_unique_id="l", file_name="log.txt")
    await h.press(SupportCB(action="reply", id=number).pack(), user=ANN)
    await h.send(None, user=ANN, document=doc, caption="log")
    files = await h.press(TicketsCB(action="files", id=number).pack(), user=AGENT)
    assert [c.params.get("photo") for c in to(files, AGENT, "sendPhoto")] == ["big-photo-id"]
    assert [c.params.get("document") for c in to(files, AGENT, "sendDocument")] == ["log-file-id"]


async def test_paid_tier_gets_priority_and_faster_promise(staffed: Harness) -> None:
    h = staffed
    await h.send("/start", user=BOB)
    async with UnitOfWork(h.app.sessionmaker) as uow:
        await uow.users.update(BOB, tier="pro")
        await uow.commit()
    h.app.users.forget(BOB)
    await open_ticket(h, "free user question")
    await h.send("/support", user=BOB)
    await h.press(SupportCB(action="new").pack(), user=BOB)
    await h.press(SupportCB(action="cat", value="billing").pack(), user=BOB)
    calls = await h.send("pro user question", user=BOB)
    assert "within 8 hours" in to(calls, BOB)[0].text and "high priority" in to(calls, BOB)[0].text
    queue = (await h.send("/tickets", user=AGENT))[0]
    labels = [label for label, _ in queue.buttons]
    assert labels[0].endswith("pro user question"[:28]) and labels[1].endswith("free user question"[:28])
    paid = (await h.press(TicketsCB(action="queue", value="priority").pack(), user=AGENT))[0]
    assert "pro user" in " ".join(label for label, _ in paid.buttons)
    assert "free user" not in " ".join(label for label, _ in paid.buttons)


async def test_ticket_isolation(staffed: Harness) -> None:
    h = staffed
    number = await open_ticket(h, "Ann's private problem")
    await h.send("/start", user=BOB)
    for data in (
        SupportCB(action="view", id=number).pack(),
        SupportCB(action="close", id=number).pack(),
        SupportCB(action="reply", id=number).pack(),
    ):
        calls = await h.press(data, user=BOB)
        assert all("Ann's private problem" not in c.text for c in calls)
        assert any("SUP-NOT-FOUND" in c.text for c in calls)
    # a Telegram reply to a message quoting Ann's ticket number adds nothing for Bob
    calls = await h.send("let me in", user=BOB, reply_to_message=bot_message(f"🎫 #{number}", BOB))
    assert any("SUP-NOT-FOUND" in c.text for c in calls)
    listing = await h.press(SupportCB(action="list").pack(), user=BOB)
    assert "no tickets" in listing[0].text
    async with UnitOfWork(h.app.sessionmaker) as uow:
        ticket = await uow.tickets.get(number)
        texts = [m.text for m in await uow.tickets.messages(number)]
    assert ticket is not None and ticket.status == "open" and texts == ["Ann's private problem"]


async def test_my_tickets_lists_only_mine(staffed: Harness) -> None:
    h = staffed
    await open_ticket(h, "first of Ann")
    await open_ticket(h, "from Bob", user=BOB)
    listing = await h.press(SupportCB(action="list").pack(), user=ANN)
    labels = " ".join(label for label, _ in listing[0].buttons)
    assert "first of Ann" in labels and "from Bob" not in labels
