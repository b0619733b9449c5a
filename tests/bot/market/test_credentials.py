"""No credential leaves the process: the MT5 password, the bot token and SECRET_KEY appear in no log line,
no stored error event, no Sentry event, no data export, no table and no chat reply, across the whole
live-account link flow and its error paths (a login no terminal issues, the gateway down, a timeout, a
failure whose message quotes the password, a refused password, a password starting with '/')."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.transport import Transport
from sqlalchemy import select

from bot.observability import init_sentry
from bot.views.compliance import ComplianceCB
from domain.db.models import Base, ErrorEventRow, UserRow
from domain.market.clock import ManualClock
from tests.fakes.telegram import TOKEN, Call
from tests.harness import Harness

PASSWORD = "MyS3cretMT5Pass"
SLASHED = "/Sl4sh-Pa55word"  # a password that looks like a command
SECRET_KEY = "test-secret"  # the stacks' SECRET_KEY (tests/conftest.py)
FOOTER = {"en": "Code ", "ru": "Код ", "es": "Código "}
REFUSED = {"en": "refused", "ru": "не принял", "es": "rechazó"}
LINKED = {"en": "linked.", "ru": "привязан.", "es": "vinculada."}


class Captured(Transport):
    """Sentry's transport, kept in memory: every envelope the SDK would send."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[str] = []

    def capture_envelope(self, envelope: Any) -> None:
        self.envelopes.append(envelope.serialize().decode("utf-8", "replace"))


@pytest.fixture
def sentry() -> Iterator[Captured]:
    transport = Captured()
    init_sentry("http://public@127.0.0.1:9/1", release="hybrid-trader@test", transport=transport)
    yield transport
    sentry_sdk.init()  # a client without a DSN: nothing is sent by later tests


async def _basic(harness: Harness, user: int = 1001) -> None:
    await harness.send("/start", user=user)
    async with harness.app.sessionmaker() as s:
        (await s.get(UserRow, user)).tier = "basic"  # type: ignore[union-attr]
        await s.commit()
    harness.app.users.forget(user)


async def _start_link(harness: Harness, login: int, lang: str) -> None:
    await harness.press("tg:link:0", lang=lang)
    await harness.send(str(login), lang=lang)
    await harness.send("HybridTrader-Sim", lang=lang)


def _deleted(calls: list[Call]) -> list[int]:
    return [int(c.params["message_id"]) for c in calls if c.method == "deleteMessage"]


def _reply(calls: list[Call]) -> str:
    return "\n".join(c.text for c in calls if c.method == "sendMessage")


async def _stored_text(harness: Harness) -> str:
    """Every row of every table, as text."""
    out = []
    async with harness.app.sessionmaker() as s:
        for table in Base.metadata.sorted_tables:
            out += [repr(tuple(row)) for row in (await s.execute(select(table))).all()]
    return "\n".join(out)


@pytest.mark.parametrize("lang", ["en", "ru", "es"])
async def test_no_credential_leaks_across_the_link_flow(
    harness: Harness, clock: ManualClock, sentry: Captured, caplog: pytest.LogCaptureFixture, lang: str
) -> None:
    caplog.set_level(logging.DEBUG)
    terminal = harness.app.market.hub.terminal
    login = terminal.open_real_account(PASSWORD, 5000.0)
    slashed_login = terminal.open_real_account(SLASHED, 3000.0)
    await _basic(harness)

    # a login no terminal issues is asked again at its own step; the password never meets it
    await harness.press("tg:link:0", lang=lang)
    again = await harness.send("²", lang=lang)
    assert again[-1].text == (await harness.press("tg:link:0", lang=lang))[-1].text  # the login prompt again

    for fault in ("disconnect", "timeout"):  # the gateway down, then a call that times out
        await _start_link(harness, login, lang)
        terminal.inject(fault, count=None, seconds=30)
        calls = await harness.send(PASSWORD, lang=lang)
        terminal.clear_faults()
        assert "MKT-UNAVAILABLE" in _reply(calls) and FOOTER[lang] in _reply(calls)
        assert len(_deleted(calls)) == 1

    # a failure whose own message quotes the password (a bridge relaying the terminal's error)
    real_connect = harness.app.market.hub.link_gateway

    async def quoting(user_id: int, login: int, password: str, server: str) -> Any:
        raise RuntimeError(f"terminal refused login {login} with password {password}")

    harness.app.market.hub.link_gateway = quoting  # type: ignore[method-assign]
    await _start_link(harness, login, lang)
    calls = await harness.send(PASSWORD, lang=lang)
    harness.app.market.hub.link_gateway = real_connect  # type: ignore[method-assign]
    assert "BUG-" in _reply(calls) and len(_deleted(calls)) == 1

    await _start_link(harness, login, lang)  # a wrong password: refused, nothing stored
    calls = await harness.send(PASSWORD + "-wrong", lang=lang)
    assert REFUSED[lang] in _reply(calls) and len(_deleted(calls)) == 1

    await _start_link(harness, slashed_login, lang)  # a password that looks like a command is a password
    calls = await harness.send(SLASHED, lang=lang)
    assert len(_deleted(calls)) == 1 and LINKED[lang] in _reply(calls), _reply(calls)

    await _start_link(harness, login, lang)
    calls = await harness.send(PASSWORD, lang=lang)
    assert len(_deleted(calls)) == 1 and LINKED[lang] in _reply(calls)
    switched = await harness.press("tg:live:0", lang=lang)
    assert f"{login}" in next(c for c in switched if c.method == "editMessageText").text

    await harness.send("/compliance", lang=lang)
    pressed = await harness.press(ComplianceCB(action="export").pack(), lang=lang)
    export = next(c for c in pressed if c.method == "sendDocument")
    exported = next(v["content"] for v in export.params.values() if isinstance(v, dict) and "content" in v)

    sentry_sdk.flush()
    async with harness.app.sessionmaker() as s:
        events = [(e.code, e.context, e.message) for e in (await s.execute(select(ErrorEventRow))).scalars()]
    assert {code for code, _, _ in events} >= {"MKT-UNAVAILABLE"} and any(c.startswith("BUG-") for c, _, _ in events)
    assert any(PASSWORD not in m and "[secret]" in m for c, _, m in events if c.startswith("BUG-"))
    assert any("exception" in e for e in sentry.envelopes)  # the BUG- reached Sentry, scrubbed
    surfaces = {
        "logs": caplog.text + "\n".join(str(r.__dict__) for r in caplog.records),
        "error_events": repr(events),
        "sentry": "\n".join(sentry.envelopes),
        "export": exported.decode("utf-8", "replace"),
        "tables": await _stored_text(harness),
        "chat": json.dumps([c.params for c in harness.telegram.calls], ensure_ascii=False, default=str),
    }
    for credential in (PASSWORD, SLASHED, TOKEN, TOKEN.split(":", 1)[1], SECRET_KEY):
        for surface, text in surfaces.items():
            assert credential not in text, f"{credential!r} leaked into {surface}"


@pytest.mark.parametrize("lang", ["en", "ru", "es"])
async def test_errors_at_the_password_step_never_record_it(harness: Harness, clock: ManualClock, lang: str) -> None:
    terminal = harness.app.market.hub.terminal
    login = terminal.open_real_account(SLASHED, 5000.0)
    await _basic(harness)
    await _start_link(harness, login, lang)
    terminal.inject("disconnect", count=None, seconds=30)
    down = await harness.send(PASSWORD, lang=lang)
    terminal.clear_faults()
    assert "MKT-UNAVAILABLE" in _reply(down) and FOOTER[lang] in _reply(down) and len(_deleted(down)) == 1
    async with harness.app.sessionmaker() as s:
        [(code, context)] = (await s.execute(select(ErrorEventRow.code, ErrorEventRow.context))).all()
    assert code == "MKT-UNAVAILABLE" and context == "message:text state=LinkForm:password"
    await _start_link(harness, login, lang)
    linked = await harness.send(SLASHED, lang=lang)  # starts with '/': still the password, deleted, not echoed
    assert len(_deleted(linked)) == 1 and LINKED[lang] in _reply(linked) and SLASHED not in _reply(linked)


async def test_a_password_the_bot_cannot_delete_is_flagged_to_the_user(harness: Harness, clock: ManualClock) -> None:
    login = harness.app.market.hub.terminal.open_real_account(PASSWORD, 5000.0)
    await _basic(harness)
    await _start_link(harness, login, "ru")
    harness.telegram.fail("deleteMessage", 400, "Bad Request: message can't be deleted")
    calls = await harness.send(PASSWORD, lang="ru")
    assert "удалите его сами" in _reply(calls) and "привязан" in _reply(calls)
    assert PASSWORD not in json.dumps([c.params for c in harness.telegram.calls], ensure_ascii=False)
