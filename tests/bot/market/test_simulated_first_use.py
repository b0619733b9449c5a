"""A new user's first steps on the default simulated terminal: prices and charts answer at once and say they are
simulated; /trade asks for the risk disclosure and, once it is accepted, shows the order preview straight away
(the blocked command is replayed through the whole chain, once, for its own user, within its expiry)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
from PIL import Image

from bot.middlewares import compliance as gate
from bot.settings import Settings
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from domain.trading.models import AccountKind
from tests.bot.market.conftest import START, Unlimited
from tests.fakes.telegram import Call, FakeTelegram
from tests.harness import Harness, build_harness

ANN, BOB = 1001, 1002
ACCEPT = "cmp:accept:risk"

WORDS = {  # what a user reads in each language
    "en": {"sim": "Simulated prices", "chart": "SIMULATED DATA", "gate": "Please read before trading",
           "preview": "Order preview", "demo": "Demo account: it trades simulated prices"},
    "ru": {"sim": "Симулированные цены", "chart": "СИМУЛИРОВАННЫЕ ДАННЫЕ", "gate": "Прочитайте перед торговлей",
           "preview": "Предпросмотр ордера", "demo": "Демо-счёт: торговля по симулированным ценам"},
    "es": {"sim": "Precios simulados", "chart": "DATOS SIMULADOS", "gate": "Lee esto antes de operar",
           "preview": "Vista previa de la orden", "demo": "Cuenta demo: opera con precios simulados"},
}  # fmt: skip


@pytest.fixture
async def fresh(stack: Settings, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    """Users who accepted nothing, on a market clock the test drives (FX open)."""
    h = await build_harness(stack, telegram, limiter=Unlimited())
    h.onboarded = False
    h.app.market.hub.use_clock(ManualClock(START))
    yield h
    await h.close()


def _texts(calls: list[Call]) -> str:
    return "\n".join(c.text or str(c.params.get("caption", "")) for c in calls)


def _png(call: Call) -> bytes:
    upload = next(v for v in call.params.values() if isinstance(v, dict) and "content" in v)
    return bytes(upload["content"])


async def _unlocked(h: Harness, user: int) -> bool:
    async with UnitOfWork(h.app.sessionmaker) as uow:
        return await h.app.compliance.trading_unlocked(uow, user)


@pytest.mark.parametrize("lang", ["en", "ru", "es"])
async def test_a_new_user_reads_marked_prices_then_trades_right_after_accepting(fresh: Harness, lang: str) -> None:
    h, words = fresh, WORDS[lang]
    price = await h.send("/price EURUSD", lang=lang)
    assert len(price) == 1 and "EURUSD" in price[0].text and words["sim"] in price[0].text
    assert ACCEPT not in [d for _, d in price[0].buttons]
    chart = await h.send("/chart EURUSD", lang=lang)
    photo = next(c for c in chart if c.method == "sendPhoto")
    assert words["sim"] in photo.params["caption"]
    image = Image.open(io.BytesIO(_png(photo)))
    assert image.info.get("Description") == words["chart"]  # the label drawn into the image, in its language
    assert not await _unlocked(h, ANN)  # reading accepted nothing on the way

    blocked = await h.send("/trade buy EURUSD 0.1", lang=lang)
    assert len(blocked) == 1 and words["gate"] in blocked[0].text
    assert blocked[0].buttons[-1][1] == ACCEPT
    async with UnitOfWork(h.app.sessionmaker) as uow:
        assert await uow.trading.account(ANN, AccountKind.DEMO) is None  # nothing was opened, nothing previewed
    accepted = await h.press(ACCEPT, lang=lang)
    previews = [c for c in accepted if c.method == "sendMessage" and words["preview"] in c.text]
    assert len(previews) == 1, [(c.method, c.text) for c in accepted]
    assert "EURUSD" in previews[0].text and words["demo"] in previews[0].text
    assert any(d and d.startswith("tr:ok:") for _, d in previews[0].buttons)
    assert [c.method for c in accepted].count("answerCallbackQuery") == 1  # one answer for the one press
    # the replay ran once: accepting again (an old disclosure message) previews nothing more
    again = await h.press(ACCEPT, lang=lang)
    assert not any(words["preview"] in c.text for c in again)


async def test_a_pressed_button_is_replayed_after_accepting(fresh: Harness) -> None:
    """/trading reads; its "link a live account" button waits for the disclosure, then starts at once."""
    h = fresh
    home = await h.send("/trading")
    assert home and ACCEPT not in [d for c in home for _, d in c.buttons]
    assert any("Demo account: it trades simulated prices" in c.text for c in home)
    async with UnitOfWork(h.app.sessionmaker) as uow:
        await uow.users.update(ANN, tier="basic")  # linking a live account is a Basic feature
        await uow.commit()
    h.app.users.forget(ANN)
    blocked = await h.press("tg:link:0", message_id=7)
    assert blocked[-1].buttons[-1][1] == ACCEPT
    accepted = await h.press(ACCEPT, message_id=8)
    assert any("Send your <b>login</b>" in c.text for c in accepted), [(c.method, c.text) for c in accepted]
    assert [c.method for c in accepted].count("answerCallbackQuery") == 1  # the replayed press answered it


async def test_the_replay_is_per_user_and_expires(fresh: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = fresh
    await h.send("/trade buy EURUSD 0.1", user=ANN)
    bob = await h.press(ACCEPT, user=BOB)  # Bob accepting runs nothing of Ann's
    assert not any("Order preview" in c.text for c in bob)
    clock = [1_000_000.0]
    monkeypatch.setattr(h.app.replays, "_clock", lambda: clock[0])
    await h.send("/trade buy EURUSD 0.2", user=ANN)  # the latest blocked command replaces the earlier one
    clock[0] += gate.REPLAY_TTL + 1
    late = await h.press(ACCEPT, user=ANN)
    assert "accepted" in late[0].text and not any("Order preview" in c.text for c in late)
    assert await _unlocked(h, ANN)
