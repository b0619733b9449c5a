"""Hostile text, numbers and button data get a clear localized answer and change nothing.

Each input here once got silence (HTML Telegram could not parse), a BUG- code (a
number no one bounded), several messages for one request, or a trader's account
posted into a group. The fake Bot API refuses unparseable HTML as Telegram does,
so an answer that Telegram would drop fails these tests.
"""

from __future__ import annotations

import pytest
from aiogram.types import Chat
from sqlalchemy import select

from domain.db.models import AlertRow, ErrorEventRow
from domain.market.clock import ManualClock
from tests.fakes.telegram import Call
from tests.harness import Harness

LANGS = ("en", "ru", "es")
FOOTER = {"en": "Code ", "ru": "Код ", "es": "Código "}  # the ErrorDNA line of every error answer
EXPIRED = {
    "en": "This button has expired",
    "ru": "Эта кнопка устарела",
    "es": "Este botón ha caducado",
}
GROUP = Chat(id=-1001234567890, type="supergroup", title="Traders")


def _confirm(calls: list[Call]) -> str:
    return next(data for c in calls for _, data in c.buttons if data and data.startswith("tr:ok:"))


def _answer(calls: list[Call]) -> Call:
    """The one thing the user saw: a message, or the alert of a button press."""
    seen = [c for c in calls if c.method in ("sendMessage", "editMessageText", "answerCallbackQuery") and c.text]
    assert len(seen) == 1, [(c.method, c.text) for c in calls]
    return seen[0]


async def _codes(harness: Harness) -> list[str]:
    async with harness.app.sessionmaker() as s:
        return list((await s.execute(select(ErrorEventRow.code))).scalars())


# ---- user text inside error answers is escaped (finding 4) ----

ESCAPED = {
    "/trade buy EUR<b>USD 0.1": "EUR&lt;b&gt;USD",
    "/trade buy EURUSD 0.1 <i>=2": "&lt;i&gt;",
    "/close <b>x</b>": "&lt;b&gt;x&lt;/b&gt;",
    "/history <b>x</b>": "&lt;b&gt;x&lt;/b&gt;",
}


@pytest.mark.parametrize("lang", LANGS)
async def test_user_text_in_error_answers_is_escaped_and_delivered(
    harness: Harness, clock: ManualClock, lang: str
) -> None:
    for text, shown in ESCAPED.items():
        answer = _answer(await harness.send(text, lang=lang))
        assert shown in answer.text and FOOTER[lang] in answer.text, (text, answer.text)
    await harness.press(_confirm(await harness.send("/trade buy EURUSD 0.1", lang=lang)), lang=lang)
    [position] = await harness.app.market.hub.demo_gateway(await _demo_login(harness)).positions()
    await harness.press(f"ps:sltp:{position.ticket}", lang=lang)
    answer = _answer(await harness.send("<i>=1 tp=<b>", lang=lang))  # typed into the SL/TP form
    assert "&lt;i&gt;" in answer.text and FOOTER[lang] in answer.text, answer.text
    assert harness.telegram.refused == []  # Telegram could parse every answer
    [unchanged] = await harness.app.market.hub.demo_gateway(await _demo_login(harness)).positions()
    assert (unchanged.sl, unchanged.tp) == (position.sl, position.tp)


async def _demo_login(harness: Harness, user: int = 1001) -> int:
    from domain.db.models import TradingAccountRow

    async with harness.app.sessionmaker() as s:
        row = (await s.execute(select(TradingAccountRow).where(TradingAccountRow.user_id == user))).scalars().first()
    assert row is not None
    return row.login


# ---- numbers: ASCII digits, int64, finite (finding 11) ----

NUMBERS = {
    "/trade buy EURUSD 1e308": "volume",
    "/history ²": "²",
    "/alerts del ²": "²",
    "/alerts add EURUSD move 1% 99999999999999999999999d": "/alerts add",
    "/close ²³": "²³",
    "/alerts del 99999999999999999999999999": "99999999999999999999999999",
}
EXPECTED_CODES = {"TRD-INVALID", "MKT-UNKNOWN-SYMBOL", "ALR-NOT-FOUND", "ALR-SYNTAX", "TRD-NO-POSITION"}


@pytest.mark.parametrize("lang", LANGS)
async def test_out_of_range_numbers_get_input_errors_not_bugs(harness: Harness, clock: ManualClock, lang: str) -> None:
    for text, shown in NUMBERS.items():
        answer = _answer(await harness.send(text, lang=lang))
        assert FOOTER[lang] in answer.text and "BUG-" not in answer.text, (text, answer.text)
        assert shown in answer.text, (text, answer.text)
    for data in ("al:pause:99999999999999999999", "sup:view::99999999999999999999", "al:del:²", "ps:close:1e308"):
        answer = _answer(await harness.press(data, lang=lang))
        assert EXPIRED[lang] in answer.text, (data, answer.text)
    assert set(await _codes(harness)) <= EXPECTED_CODES
    async with harness.app.sessionmaker() as s:
        assert (await s.execute(select(AlertRow))).scalars().all() == []  # nothing was created
    assert await harness.app.market.hub.demo_gateway(await _demo_login(harness)).positions() == []


async def test_ids_that_fit_still_work(harness: Harness, clock: ManualClock) -> None:
    await harness.send("/alerts add EURUSD > 1.5")
    async with harness.app.sessionmaker() as s:
        alert_id = (await s.execute(select(AlertRow.id))).scalar_one()
    await harness.send(f"/alerts pause #{alert_id}")
    assert await _alert_status(harness) == ["paused"]
    await harness.press(f"al:resume:{alert_id}")
    assert await _alert_status(harness) == ["active"]
    await harness.send(f"/alerts del {alert_id}")
    assert await _alert_status(harness) == []
    longest = (await harness.send("/history 100000"))[0]  # a longer window than allowed means the longest
    assert "last 365 days" in longest.text


async def _alert_status(harness: Harness) -> list[str]:
    async with harness.app.sessionmaker() as s:
        return [str(v) for v in (await s.execute(select(AlertRow.status))).scalars()]


# ---- /price answers once (the paste finding) ----


@pytest.mark.parametrize("lang", LANGS)
async def test_price_answers_once_with_what_it_did_not_understand(
    harness: Harness, clock: ManualClock, lang: str
) -> None:
    calls = await harness.send("/price EURUSD FOO BAR", lang=lang)
    [answer] = [c for c in calls if c.method == "sendMessage"]
    assert "EURUSD" in answer.text and "FOO" in answer.text and "BAR" in answer.text
    assert ("Bid" if lang == "en" else {"ru": "Спред", "es": "Diferencial"}[lang]) in answer.text
    paste = "/price " + "\n".join(f"line {i} of a pasted <report> & notes" for i in range(100))
    calls = await harness.send(paste, lang=lang)
    [answer] = [c for c in calls if c.method == "sendMessage"]
    assert "LINE" in answer.text and "&lt;REPORT&gt;" in answer.text  # escaped, and Telegram accepted it
    assert {"en": "not looked up", "ru": "не провер", "es": "no se busc"}[lang] in answer.text
    assert harness.telegram.refused == []


# ---- account commands are private-chat only (finding 13) ----

PRIVATE_ONLY = {"en": "works only in a private chat", "ru": "только в личном чате", "es": "solo funciona en un chat privado"}


@pytest.mark.parametrize("lang", LANGS)
async def test_account_commands_and_their_buttons_refuse_groups(
    harness: Harness, clock: ManualClock, lang: str
) -> None:
    await harness.send("/balance", lang=lang)  # the demo account exists: there is something to leak
    for command in ("/balance", "/positions", "/history", "/trade buy EURUSD 0.1", "/trading", "/billing",
                    "/compliance", "/performance"):  # fmt: skip
        answer = _answer(await harness.send(command, lang=lang, chat=GROUP))
        assert PRIVATE_ONLY[lang] in answer.text and int(answer.params["chat_id"]) == GROUP.id, (command, answer.text)
        assert "10,000" not in answer.text and "10 000" not in answer.text
    for data in ("ps:list", "tg:link:0", "hi:0:7:", "menu:balance"):
        answer = _answer(await harness.press(data, lang=lang, chat=GROUP))
        assert answer.method == "answerCallbackQuery" and PRIVATE_ONLY[lang] in answer.text, (data, answer.text)
    assert await harness.app.market.hub.demo_gateway(await _demo_login(harness)).positions() == []
    # public commands still answer in groups; the same account command answers in private
    assert "Bid" in (await harness.send("/price EURUSD", chat=GROUP))[0].text
    assert "10,000.00 USD" in (await harness.send("/balance"))[0].text


async def test_a_typed_server_name_is_shown_escaped(harness: Harness, clock: ManualClock) -> None:
    from domain.db.models import UserRow

    terminal = harness.app.market.hub.terminal
    terminal.server = "Broker<b> & Co"  # a broker whose server name is markup, typed back by the user
    login = terminal.open_real_account("pw-123456", 5000.0)
    await harness.send("/start")
    async with harness.app.sessionmaker() as s:
        (await s.get(UserRow, 1001)).tier = "basic"  # type: ignore[union-attr]
        await s.commit()
    harness.app.users.forget(1001)
    await harness.press("tg:link:0")
    await harness.send(str(login))
    await harness.send("Broker<b> & Co")
    linked = await harness.send("pw-123456")
    assert "Broker&lt;b&gt; &amp; Co" in _reply_text(linked)
    switched = await harness.press("tg:live:0")
    assert "Broker&lt;b&gt; &amp; Co" in next(c for c in switched if c.method == "editMessageText").text
    assert "5,000.00 USD" in (await harness.send("/balance"))[0].text
    assert harness.telegram.refused == []


def _reply_text(calls: list[Call]) -> str:
    return "\n".join(c.text for c in calls if c.method == "sendMessage")
