"""The tier and disclosure gates hold whatever shape an update takes: a command in a photo caption is gated
exactly like the typed command, and an erasure relocks trading on every replica."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest
from aiogram.types import PhotoSize

from bot.registry import Category
from bot.settings import Settings
from handlers import COMMANDS
from tests.fakes.telegram import Call, FakeTelegram
from tests.harness import Harness, build_harness

ANN = 1001
_users = itertools.count(5001)

# Every public command a Free user who never accepted the disclosure may not use: a tier-gated one or a
# trading one (behind the disclosure). Read from the registry, so a new gated command is covered the day
# it is declared.
GATED = [c.name for c in COMMANDS if not c.staff and (c.gated or c.category == Category.TRADING)]


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
    assert len(GATED) >= 13 and {"balance", "performance", "trade", "close", "price", "ai"} <= set(GATED)


@pytest.mark.parametrize("lang", ["en", "ru", "es"])
async def test_a_command_in_a_photo_caption_is_gated_like_the_typed_command(fresh: Harness, lang: str) -> None:
    h = fresh
    for name in GATED:
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
        assert "Balance" in (await b.send("/balance"))[0].text  # B remembers the acceptance
        a.onboarded = b.onboarded = False
        erased = await a.press(ComplianceCB(action="erase").pack())
        assert any("deleted" in c.text.lower() for c in erased)
        await a.app.user_sync.published()  # type: ignore[union-attr]
        for _ in range(250):  # the notice crosses Redis
            if b.app.user_sync.dropped:  # type: ignore[union-attr]
                break
            await asyncio.sleep(0.02)
        again = await b.send("/balance")
        assert len(again) == 1 and "Please read before trading" in again[0].text
        assert again[0].buttons == [("✅ I accept", "cmp:accept:risk")]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await a.close()
        await b.close()
