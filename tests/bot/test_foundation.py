"""The foundation commands as a user meets them, on both stacks and in three languages."""

from __future__ import annotations

import time

import pytest
from aiogram import Router
from aiogram.filters import Command as CommandFilter
from aiogram.types import Message, Sticker
from sqlalchemy import func, select

from bot.i18n import N_
from bot.registry import Category, Command, Registry
from bot.settings import Settings
from domain.db.models import AuditRow, ErrorEventRow, UsageEventRow
from domain.db.repositories import SqlUserRepository
from handlers import COMMANDS
from tests.fakes.telegram import FakeTelegram
from tests.harness import Harness, build_harness

WELCOME = {"en": "Welcome, Ann", "ru": "Добро пожаловать, Ann", "es": "Bienvenido, Ann"}
HELP = {"en": "What I can do", "ru": "Что я умею", "es": "Lo que puedo hacer"}
STATUS = {"en": "System status", "ru": "Состояние системы", "es": "Estado del sistema"}
SETTINGS = {"en": "Settings", "ru": "Настройки", "es": "Ajustes"}


@pytest.mark.parametrize("lang", ["en", "ru", "es"])
async def test_core_commands_in_each_language(harness: Harness, lang: str) -> None:
    start = await harness.send("/start", lang=lang)
    assert len(start) == 1 and WELCOME[lang] in start[0].text
    labels = [label for label, _ in start[0].buttons]
    assert len(labels) == 5 and all(label for label in labels)  # help, status, settings, dashboard, plans
    assert HELP[lang] in (await harness.send("/help", lang=lang))[0].text
    status = (await harness.send("/status", lang=lang))[0].text
    assert STATUS[lang] in status and "✅" in status
    config = await harness.send("/config", lang=lang)
    assert SETTINGS[lang] in config[0].text
    assert [data for _, data in config[0].buttons][:2] == ["cfg:lang:", "cfg:tz:"]


async def test_start_shows_tier_and_menu_buttons_work(harness: Harness) -> None:
    start = (await harness.send("/start"))[0]
    assert "Your plan: <b>Free</b>" in start.text
    assert "30 requests/min" in start.text and "3 price alerts" in start.text
    buttons = dict(start.buttons)
    assert buttons["🩺 Status"] == "menu:status"
    status = await harness.press("menu:status", message_id=55)
    edit = next(c for c in status if c.method == "editMessageText")
    assert "System status" in edit.text and int(edit.params["message_id"]) == 55
    plans = await harness.press("plans")
    text = next(c for c in plans if c.method == "editMessageText").text
    for name, price in (("Basic", "500 ⭐ every 30 days"), ("Pro", "1500 ⭐ every 30 days"), ("Enterprise", "5000 ⭐ every 30 days")):
        assert name in text and price in text
    assert "$" not in text  # inside Telegram plans are sold for Stars only
    assert "(your plan)" in text


async def test_status_reports_backends_and_quota_usage(harness: Harness) -> None:
    text = (await harness.send("/status"))[0].text
    stack = "PostgreSQL" if harness.app.redis is not None else "SQLite"
    assert f"Database: {stack}" in text
    assert ("Redis: Redis" in text) if harness.app.redis is not None else ("in-memory (no REDIS_URL)" in text)
    assert "AI analyses today: 0 / 3" in text
    assert "Requests: up to 30 per minute" in text


async def test_help_is_generated_from_the_registry(harness: Harness) -> None:
    text = (await harness.send("/help"))[0].text
    for command in COMMANDS:
        assert (f"/{command.name} — " in text) != command.staff  # staff commands never appear to users


async def test_deep_link_referral_is_stored_for_new_users_only(harness: Harness) -> None:
    await harness.send("/start", user=1)
    referrer = await harness.stored_user(1)
    assert referrer is not None
    await harness.send(f"/start ref_{referrer.referral_code}", user=2)
    assert (await harness.stored_user(2)).referred_by == 1  # type: ignore[union-attr]
    await harness.send("/start", user=3)
    await harness.send(f"/start ref_{referrer.referral_code}", user=3)  # already a user: no attribution
    assert (await harness.stored_user(3)).referred_by is None  # type: ignore[union-attr]
    reply = await harness.send("/start ref_<script>", user=4)  # unknown payloads are ignored
    assert "Welcome, Ann" in reply[0].text
    assert (await harness.stored_user(4)).referred_by is None  # type: ignore[union-attr]


async def test_config_language_switch_is_stored_and_wins_over_telegram(harness: Harness) -> None:
    await harness.send("/config", lang="en")
    chosen = await harness.press("cfg:setlang:es", lang="en")
    assert "Ajustes" in next(c for c in chosen if c.method == "editMessageText").text
    assert (await harness.stored_user(1001)).language == "es"  # type: ignore[union-attr]
    # Telegram still says English; the stored choice wins.
    assert "¡Bienvenido, Ann!" in (await harness.send("/start", lang="en"))[0].text


async def test_config_notifications_and_time_zone(harness: Harness) -> None:
    await harness.send("/config")
    toggled = await harness.press("cfg:notify:news")
    edit = next(c for c in toggled if c.method == "editMessageText")
    assert "Product news: on" in edit.text
    assert (await harness.stored_user(1001)).notifications["news"] is True  # type: ignore[union-attr]
    await harness.press("cfg:settz:Asia/Tokyo")
    assert (await harness.stored_user(1001)).timezone == "Asia/Tokyo"  # type: ignore[union-attr]
    await harness.press("cfg:typetz:")
    wrong = await harness.send("Mars/Olympus")
    assert "I don't know the time zone" in wrong[0].text
    right = await harness.send("UTC+3")
    assert "Time zone: Etc/GMT-3" in right[0].text
    assert (await harness.stored_user(1001)).timezone == "Etc/GMT-3"  # type: ignore[union-attr]
    assert "I work with commands" in (await harness.send("Europe/Paris"))[0].text  # the step is over


async def test_cancel_leaves_the_time_zone_step(harness: Harness) -> None:
    await harness.send("/config")
    await harness.press("cfg:typetz:")
    assert (await harness.send("/cancel"))[0].text == "Cancelled."
    assert "I work with commands" in (await harness.send("Asia/Tokyo"))[0].text
    assert (await harness.stored_user(1001)).timezone == "UTC"  # type: ignore[union-attr]
    assert (await harness.send("/cancel"))[0].text == "Nothing to cancel."


async def test_forged_and_stale_callbacks_change_nothing(harness: Harness) -> None:
    await harness.send("/start")
    forged = await harness.press("cfg:setlang:xx")
    alert = next(c for c in forged if c.method == "answerCallbackQuery")
    assert "INP-INVALID" in alert.params["text"] and alert.params["show_alert"] in (True, "true")
    user = await harness.stored_user(1001)
    assert user is not None and user.language is None
    stale = await harness.press("gone:123")
    assert "expired" in next(c for c in stale if c.method == "answerCallbackQuery").params["text"]
    junk = await harness.press("cfg:notify:" + "x" * 40)
    assert "INP-INVALID" in next(c for c in junk if c.method == "answerCallbackQuery").params["text"]


async def test_unknown_command_and_other_content(harness: Harness) -> None:
    assert "don't know the command /frobnicate" in (await harness.send("/frobnicate now"))[0].text
    assert "&lt;b&gt;" in (await harness.send("/<b>x</b>"))[0].text  # user input is escaped
    sticker = Sticker(file_id="s", file_unique_id="u", type="regular", width=1, height=1, is_animated=False, is_video=False)
    other = await harness.send(None, sticker=sticker)
    assert "can't read this kind of message" in other[0].text
    assert "No conozco el comando" in (await harness.send("/nope", lang="es"))[0].text


async def test_flood_gets_one_rate_limit_reply(harness: Harness) -> None:
    calls = []
    started = time.monotonic()
    for _ in range(100):
        calls += await harness.send("/help", user=77)
    refilled = (time.monotonic() - started) * 30 / 60  # the free tier's 30/min trickling in during the flood
    notices = [c for c in calls if "Slow down" in c.text]
    helps = [c for c in calls if "What I can do" in c.text]
    assert len(notices) == 1
    assert 10 <= len(helps) <= 10 + int(refilled) + 1  # the free burst, plus what trickled in
    assert len(calls) == len(notices) + len(helps)
    assert "What I can do" in (await harness.send("/help", user=78))[0].text  # others are unaffected


async def test_usage_is_metered_per_command(harness: Harness) -> None:
    await harness.send("/start", user=5)
    await harness.send("/help", user=5)
    await harness.press("menu:help", user=5)
    await harness.send("hello", user=5)  # not a command: not metered
    await harness.app.meter.flush()
    async with harness.app.sessionmaker() as s:
        rows = (await s.execute(select(UsageEventRow.name, func.count()).where(UsageEventRow.user_id == 5).group_by(UsageEventRow.name))).all()
    assert dict(rows) == {"start": 1, "help": 2}


async def test_long_replies_are_split_and_flood_control_is_honoured(harness: Harness) -> None:
    harness.telegram.fail("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    await harness.bot.send_message(1001, "\n".join(f"line {i} " + "x" * 60 for i in range(200)))
    sent = harness.telegram.sent("sendMessage")
    assert len(sent) == 4  # 13 k characters → 4 messages, the first one retried after 429
    assert all(len(c.text) <= 4096 for c in sent)
    assert "line 0 " in sent[0].text and "line 199 " in sent[-1].text


def _gated_registry() -> Registry:
    def vip_router() -> Router:
        router = Router(name="vip")

        @router.message(CommandFilter("vip"))
        async def vip(message: Message) -> None:
            await message.answer("vip ok")

        @router.message(CommandFilter("boom"))
        async def boom(message: Message) -> None:
            raise RuntimeError("kaboom")

        return router

    extra = (
        Command("vip", vip_router, N_("Main menu"), Category.TRADING, min_tier="pro", callbacks=("vip",)),
        Command("boom", vip_router, N_("Main menu"), Category.CORE),
    )
    return Registry((*COMMANDS, *extra))


@pytest.fixture
async def gated(stack: Settings, telegram: FakeTelegram):  # type: ignore[no-untyped-def]
    h = await build_harness(stack, telegram, registry=_gated_registry())
    yield h
    await h.close()


async def test_locked_command_shows_upgrade_path(gated: Harness) -> None:
    reply = await gated.send("/vip")
    assert "🔒 /vip needs the Pro plan (1500 ⭐ every 30 days)" in reply[0].text
    assert reply[0].buttons == [("💎 Compare plans", "plans")]
    alert = await gated.press("vip:1")
    assert "needs the Pro plan" in next(c for c in alert if c.method == "answerCallbackQuery").params["text"]
    assert (await gated.send("/vip", lang="ru"))[0].text == "🔒 Для /vip нужен план Про (1500 ⭐ каждые 30 дней)."
    help_text = (await gated.send("/help", lang="en"))[0].text
    assert "Unlocked by upgrading" in help_text and "/vip — Main menu (Pro)" in help_text


async def test_unlocked_after_tier_change(gated: Harness) -> None:
    await gated.send("/start")
    async with gated.app.sessionmaker() as s:
        await SqlUserRepository(s).update(1001, tier="pro")
        await s.commit()
    gated.app.users.forget(1001)
    assert (await gated.send("/vip"))[0].text == "vip ok"


async def test_handler_exception_is_reported_and_the_bot_keeps_serving(gated: Harness) -> None:
    await gated.send("/help", lang="es")
    async with gated.app.sessionmaker() as s:
        audited_before = await s.scalar(select(func.count()).select_from(AuditRow))
    reply = await gated.send("/boom", lang="es")
    text = reply[0].text
    assert "Algo salió mal" in text and "Código BUG-" in text
    ref = text.rsplit("ref. ", 1)[1].split(":", 1)[0]
    async with gated.app.sessionmaker() as s:
        stored = (await s.execute(select(ErrorEventRow))).scalars().all()
    assert [(e.ref, e.context) for e in stored] == [(ref, "command:/boom")]
    assert stored[0].user_hash and "1001" not in stored[0].user_hash
    async with gated.app.sessionmaker() as s:
        assert await s.scalar(select(func.count()).select_from(AuditRow)) == audited_before  # nothing was done
    assert "What I can do" in (await gated.send("/help", lang="en"))[0].text
