"""The fake Bot API refuses HTML the way Telegram does, so an unescaped reply fails in tests."""

from __future__ import annotations

import pytest
from aiogram import html

from tests.fakes.telegram_html import entity_error


@pytest.mark.parametrize("text", [
    "plain", "<b>bold</b> and <i>italic</i>", "<B>caps</B>", '<a href="https://t.me/x">link</a>', "a > b",
    "AT&T", "&nbsp;", "&lt;b&gt; &amp; &quot; &#39; &#x27;", "<pre><code class=\"language-python\">x</code></pre>",
    '<span class="tg-spoiler">s</span>', "<tg-spoiler>s</tg-spoiler>", "<blockquote expandable>q</blockquote>",
    html.quote("EUR<b>USD & <i>=2"),
])  # fmt: skip
def test_what_telegram_accepts(text: str) -> None:
    assert entity_error(text) is None


@pytest.mark.parametrize("text", [
    "EUR<b>USD", "<i>=2", "a < b", "<b>x</i>", "</b>", "<script>x</script>", "<b", "<span>x</span>",
    "<a>no href</a>", "<>",
])  # fmt: skip
def test_what_telegram_refuses(text: str) -> None:
    assert entity_error(text) is not None


async def test_the_fake_answers_400_cant_parse_entities(telegram) -> None:  # type: ignore[no-untyped-def]
    from aiogram import Bot
    from aiogram.client.default import DefaultBotProperties
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.exceptions import TelegramBadRequest

    from tests.fakes.telegram import TOKEN

    session = AiohttpSession(api=TelegramAPIServer.from_base(telegram.url))
    bot = Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode="HTML"))
    try:
        with pytest.raises(TelegramBadRequest, match="can't parse entities"):
            await bot.send_message(1, "EUR<b>USD")
        await bot.send_message(1, "EUR<b>USD", parse_mode=None)  # no parse mode: any text goes
        await bot.send_message(1, html.quote("EUR<b>USD"))
    finally:
        await session.close()
    assert [c.params["text"] for c in telegram.calls] == ["EUR<b>USD", "EUR&lt;b&gt;USD"]
    assert len(telegram.refused) == 1
