"""Numbers outside trading read the same way: "²" and ids past int64 get an input answer, never a BUG- code."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from bot.settings import Settings
from bot.views.staff import BroadcastCB
from domain.db.models import ErrorEventRow
from tests.fakes.telegram import FakeTelegram
from tests.bot.market.conftest import Unlimited
from tests.harness import Harness, build_harness

ADMIN = 9001


@pytest.fixture
async def staffed(stack: Settings, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    h = await build_harness(stack.model_copy(update={"admin_ids": frozenset({ADMIN})}), telegram, limiter=Unlimited())
    await h.send("/start", user=ADMIN)
    yield h
    await h.close()


async def _codes(h: Harness) -> list[str]:
    async with h.app.sessionmaker() as s:
        return list((await s.execute(select(ErrorEventRow.code))).scalars())


@pytest.mark.parametrize(("lang", "unknown_zone"), [("en", "I don't know the time zone"),
                                                   ("ru", "Я не знаю часовой пояс"), ("es", "No conozco la zona")])  # fmt: skip
async def test_time_zone_offsets_in_other_digits(harness: Harness, lang: str, unknown_zone: str) -> None:
    await harness.send("/config", lang=lang)
    await harness.press("cfg:typetz:", lang=lang)
    for typed in ("UTC+²", "+99999999999999999999999999"):
        answer = await harness.send(typed, lang=lang)
        assert answer[0].text.startswith(unknown_zone) or "INP-INVALID" in answer[0].text, answer[0].text
    assert not [c for c in await _codes(harness) if c.startswith("BUG-")]
    assert (await harness.stored_user(1001)).timezone == "UTC"  # type: ignore[union-attr]


async def test_staff_numbers(staffed: Harness) -> None:
    h = staffed
    assert "Usage" in (await h.send("/grant 1001 pro ²", user=ADMIN))[0].text
    assert "Usage" in (await h.send("/grant 1001 pro 99999999999999999999", user=ADMIN))[0].text
    assert "INP-INVALID" in (await h.send("/grant 1001 pro 999999", user=ADMIN))[0].text
    for ref in ("99999999999999999999999", "²³", "-99999999999999999999999"):
        assert "ADM-NO-USER" in (await h.send(f"/user {ref}", user=ADMIN))[0].text, ref
    await h.send("/broadcast", user=ADMIN)
    await h.send("Hello", user=ADMIN)
    await h.send("Read | https://example.com", user=ADMIN)
    forged = await h.press(BroadcastCB(action="active", value="99999999999999999999").pack(), user=ADMIN)
    assert any("Active: any time" in c.text for c in forged), [c.text for c in forged]  # unchanged segment
    preview = await h.press(BroadcastCB(action="preview").pack(), user=ADMIN)
    assert all("BUG-" not in c.text for c in preview)
    assert not [c for c in await _codes(h) if c.startswith("BUG-")]
