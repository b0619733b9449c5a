"""The same update delivered twice is handled once, also across two replicas sharing Redis."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.settings import Settings
from tests.fakes.telegram import FakeTelegram
from tests.harness import Harness, build_harness


def _update(harness: Harness, update_id: int, text: str = "/help"):  # type: ignore[no-untyped-def]
    from aiogram.types import Chat, Message, Update

    message = Message(
        message_id=update_id, date=datetime.now(UTC), chat=Chat(id=4242, type="private"),
        from_user=harness.tg_user(4242), text=text,
    )  # fmt: skip
    return Update(update_id=update_id, message=message)


async def test_a_redelivered_update_is_answered_once(harness: Harness) -> None:
    update = _update(harness, 900_001)
    first = await harness.feed(update)
    again = await harness.feed(update)
    assert len(first) == 1 and again == []
    assert len(await harness.feed(_update(harness, 900_002))) == 1  # a new update is served


async def test_a_failed_update_can_be_redelivered(harness: Harness) -> None:
    harness.telegram.fail("sendMessage", 500, "Internal Server Error")
    update = _update(harness, 900_010)
    await harness.feed(update)  # the reply failed: the error layer reported it
    retried = await harness.feed(update)
    assert [c.method for c in retried if c.method == "sendMessage"] == ["sendMessage"]


@pytest.mark.integration
async def test_two_replicas_sharing_redis_handle_an_update_once(
    pg_url: str, redis_url: str, telegram: FakeTelegram, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path, secret_key="t")
    one, two = await build_harness(settings, telegram), await build_harness(settings, telegram)
    try:
        update = _update(one, 900_020, "/start")
        replies = await one.feed(update) + await two.feed(update)
        assert [c.method for c in replies] == ["sendMessage"]
    finally:
        await one.close()
        await two.close()
