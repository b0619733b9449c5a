"""The tier and disclosure gates hold whatever shape an update takes: a command in a photo caption is gated
exactly like the typed command, and an erasure relocks trading on every replica. The disclosure gates only
what moves money or links an account; reading works before it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import PhotoSize

from bot.settings import Settings
from domain.db.uow import UnitOfWork
from handlers import COMMANDS
from tests.fakes.telegram import Call, FakeTelegram
from tests.harness import Harness, build_harness

ANN = 1001
_users = itertools.count(5001)

# What moves money or links an account, read from the registry: a new order command is covered the day
# it is declared.
MONEY = [c.name for c in COMMANDS if not c.staff and c.moves_money()]
# Reading commands: quotes, charts, alerts, analyses, the account's state. They work before the disclosure.
READING = ["price", "chart", "alerts", "ai", "signals", "agents", "positions", "balance", "history", "risk", "trading"]


def locked_for_free(h: Harness) -> list[str]:
    """Every public command a Free user who never accepted the disclosure may not use: one their plan lacks
    (the tier gate) or one that moves money (the disclosure gate)."""
    free = h.app.tiers.get("free")
    return [c.name for c in COMMANDS if not c.staff and (not h.app.registry.allowed(c, free, h.app.tiers)
                                                          or c.moves_money())]  # fmt: skip


@pytest.fixture
async def fresh(stack: Settings, telegram: FakeTelegram) -> AsyncIterator[Harness]:
    """The real registry; users on Free who never accepted the risk disclosure."""
    h = await build_harness(stack, telegram)
    h.onboarded = False
    yield h
    await h.close()


def _seen(calls: list[Call]) -> list[tuple[str, str, list[tuple[str, str | None]]]]:
    return [(c.method, c.text, c.buttons) for c in calls]


async def _photo(h: Harness, caption: str, user: int, lang: str) -> list[Call]:
    photo = [PhotoSize(file_id="AgAD", file_unique_id="u1", width=90, height=90)]
    return await h.send(None, user=user, lang=lang, caption=caption, photo=photo)


def test_the_registry_reads_a_command_as_the_command_filter_does() -> None:
    from handlers import default_registry

    registry = default_registry()
    assert registry.get("balance") is registry.for_text("  /balance@hybrid_bot now")
    assert registry.for_text("/BALANCE") is registry.get("balance")
    assert registry.for_text("balance") is None and registry.for_text("") is None and registry.for_text("/") is None
    assert {"trade", "close"} <= set(MONEY) and not set(MONEY) & set(READING)


def test_the_registry_says_which_uses_move_money() -> None:
    """One declaration per command: typed, with arguments, pressed, from the menu, as a dialog action."""
    from handlers import default_registry

    registry = default_registry()
    trade, trading, positions = registry.get("trade"), registry.get("trading"), registry.get("positions")
    price, alerts = registry.get("price"), registry.get("alerts")
    assert trade is not None and trading is not None and positions is not None
    assert price is not None and alerts is not None
    assert trade.moves_money() and trade.moves_money(text="/trade buy EURUSD 1") and trade.moves_money(data="menu:trade")
    assert trade.moves_money(data="tr:ok:abc") and trade.moves_money(data="tf:side:EURUSD")
    assert not trading.moves_money() and not trading.moves_money(text="/trading") and not trading.moves_money(
        text="/trading nonsense")  # fmt: skip
    assert trading.moves_money(text="/trading threshold 72") and trading.moves_money(text="/trading RISK 1")
    assert trading.moves_money(data="tg:link:0") and trading.moves_money(data="tg:auto:1")
    assert trading.moves_money(data="tg:live:0") and trading.moves_money(data="at:home:1001")
    assert not trading.moves_money(data="tg:kill:1") and not trading.moves_money(data="tg:demo:0")
    assert not trading.moves_money(data="tg:unlink:0") and not trading.moves_money(data="tg:home:0")
    assert positions.moves_money(data="ps:close:5") and positions.moves_money(data="ps:sltp:5")
    assert not positions.moves_money(data="ps:list:0") and not positions.moves_money(text="/positions")
    assert not price.moves_money(text="/price EURUSD") and not alerts.moves_money(data="al:del:1")


@pytest.mark.parametrize("lang", ["en", "ru", "es"])
async def test_a_command_in_a_photo_caption_is_gated_like_the_typed_command(fresh: Harness, lang: str) -> None:
    h = fresh
    gated = locked_for_free(h)
    assert {"trade", "close", "performance"} <= set(gated), gated
    for name in gated:
        typed_user, photo_user = next(_users), next(_users)
        await h.send("/start", user=typed_user, lang=lang)
        await h.send("/start", user=photo_user, lang=lang)
        typed = await h.send(f"/{name}", user=typed_user, lang=lang)
        captioned = await _photo(h, f"/{name}", photo_user, lang)
        assert len(typed) == 1, (name, _seen(typed))
        gate = typed[0].buttons[-1][1] or ""
        assert gate.startswith(("cmp:accept:risk", "plans")), (name, _seen(typed))  # a gate answered, nothing else
        assert _seen(captioned) == _seen(typed), name
        assert _seen(await _photo(h, f"/{name}@hybrid_bot EURUSD", photo_user, lang)) == _seen(typed), name
    # an argument that moves money is gated in a caption too
    typed_user, photo_user = next(_users), next(_users)
    typed = await h.send("/trading threshold 72", user=typed_user, lang=lang)
    assert typed[-1].buttons == [(typed[-1].buttons[0][0], "cmp:accept:risk")], _seen(typed)
    assert _seen(await _photo(h, "/trading threshold 72", photo_user, lang)) == _seen(typed)


@pytest.mark.parametrize("lang", ["en", "ru", "es"])
async def test_reading_commands_work_before_the_disclosure(fresh: Harness, lang: str) -> None:
    """Quotes, charts, alerts, analyses and the account's state answer a new user who accepted nothing; what
    their plan lacks still says so (the tier gate), never the disclosure."""
    h = fresh
    args = {"price": " EURUSD", "chart": " EURUSD", "ai": " EURUSD"}
    for name in READING:
        user = next(_users)
        calls = await h.send(f"/{name}{args.get(name, '')}", user=user, lang=lang)
        assert calls, name
        buttons = [data for c in calls for _, data in c.buttons]
        assert "cmp:accept:risk" not in buttons, (name, _seen(calls))
        assert not any(c.method == "sendMessage" and "⚠️" in c.text.split("\n")[0] for c in calls), (name, _seen(calls))
        async with UnitOfWork(h.app.sessionmaker) as uow:
            assert not await h.app.compliance.trading_unlocked(uow, user)  # nothing was accepted on the way


@pytest.mark.parametrize("lang", ["en", "ru", "es"])
async def test_buttons_that_move_money_wait_for_the_disclosure(fresh: Harness, lang: str) -> None:
    """Linking, auto-trading, the live account, closing or changing a position, the order buttons: each asks
    for the disclosure and changes nothing; the kill switch (it stops trading) works."""
    h = fresh
    await h.send("/start", lang=lang)
    for data in ("tg:link:0", "tg:auto:1", "tg:live:0", f"at:on:{ANN}:", "ps:close:5", "ps:sltp:5", "tr:ok:x",
                 "tf:side:EURUSD"):  # fmt: skip
        calls = await h.press(data, lang=lang)
        assert calls[0].method == "answerCallbackQuery" and calls[-1].buttons[-1][1] == "cmp:accept:risk", data
    state = await h.app.storage.get_state(StorageKey(h.bot.id, ANN, ANN))
    assert state is None  # the link flow did not start
    async with UnitOfWork(h.app.sessionmaker) as uow:
        profile = await uow.trading.profile(ANN)
        assert not profile.kill_switch
    kill = await h.press("tg:kill:1", lang=lang)
    assert all(b[1] != "cmp:accept:risk" for c in kill for b in c.buttons), _seen(kill)
    async with UnitOfWork(h.app.sessionmaker) as uow:
        assert (await uow.trading.profile(ANN)).kill_switch


@pytest.mark.integration
async def test_an_erasure_on_one_replica_relocks_trading_on_the_other(
    pg_url: str, redis_url: str, telegram: FakeTelegram, tmp_path: object
) -> None:
    """Two app instances on one PostgreSQL and Redis (two bot replicas): B remembered that Ann accepted the
    disclosure; Ann erases her data through A; B's very next trading command asks for the disclosure again."""
    from bot.views.compliance import ComplianceCB

    settings = Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path, secret_key="test-secret")
    a, b = await build_harness(settings, telegram), await build_harness(settings, telegram)
    syncs = [h.app.user_sync for h in (a, b)]
    assert all(s is not None for s in syncs)
    tasks = [asyncio.create_task(s.run()) for s in syncs]  # type: ignore[union-attr]
    try:
        await asyncio.wait_for(asyncio.gather(*(s.subscribed.wait() for s in syncs)), 10)  # type: ignore[union-attr]
        await a.send("/start")  # Ann accepted the disclosure (the harness onboards her)
        before = await b.send("/trade")  # B remembers the acceptance: the order flow starts
        assert len(before) == 1 and "cmp:accept:risk" not in [d for _, d in before[0].buttons]
        a.onboarded = b.onboarded = False
        erased = await a.press(ComplianceCB(action="erase").pack())
        assert any("deleted" in c.text.lower() for c in erased)
        await a.app.user_sync.published()  # type: ignore[union-attr]
        for _ in range(250):  # the notice crosses Redis
            if b.app.user_sync.dropped:  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.02)
        again = await b.send("/trade")
        assert len(again) == 1 and "Please read before trading" in again[0].text
        assert again[0].buttons == [("✅ I accept", "cmp:accept:risk")]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await a.close()
        await b.close()
