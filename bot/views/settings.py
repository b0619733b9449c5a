"""/config: language, time zone and notification switches."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram import html
from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bot.i18n import N_
from bot.views import View
from bot.views.common import on_off
from domain.users import LANGUAGES, Notify, User

LANGUAGE_NAMES = {"en": "English", "ru": "Русский", "es": "Español"}
NOTIFY_NAMES = {
    Notify.ALERTS: N_("Price alerts"),
    Notify.SIGNALS: N_("AI signals"),
    Notify.DIGEST: N_("Daily digest"),
    Notify.NEWS: N_("Product news"),
}
COMMON_ZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Madrid",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Singapore",
    "Asia/Tokyo",
    "Australia/Sydney",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "America/Mexico_City",
    "America/Sao_Paulo",
)


class ConfigCB(CallbackData, prefix="cfg"):
    action: str  # home, lang, setlang, tz, settz, typetz, notify
    value: str = ""


def settings_view(user: User, now: datetime) -> View:
    local = now.astimezone(ZoneInfo(user.timezone)).strftime("%H:%M")
    lines = [
        _("<b>⚙️ Settings</b>"),
        _("Language: {language}").format(language=LANGUAGE_NAMES[user.locale]),
        _("Time zone: {zone} (now {time})").format(zone=user.timezone, time=local),
        "",
        _("<b>Notifications</b>"),
    ]
    lines += [f"• {_(NOTIFY_NAMES[kind])}: {on_off(user.wants(kind))}" for kind in Notify]
    keyboard = InlineKeyboardBuilder()
    keyboard.button(text=_("🌐 Language"), callback_data=ConfigCB(action="lang"))
    keyboard.button(text=_("🕒 Time zone"), callback_data=ConfigCB(action="tz"))
    for kind in Notify:
        mark = "✅" if user.wants(kind) else "❌"
        keyboard.button(text=f"{mark} {_(NOTIFY_NAMES[kind])}", callback_data=ConfigCB(action="notify", value=kind))
    keyboard.adjust(2)
    return "\n".join(lines), keyboard.as_markup()


def language_view(user: User) -> View:
    keyboard = InlineKeyboardBuilder()
    for code in LANGUAGES:
        mark = "• " if code == user.locale else ""
        keyboard.button(text=mark + LANGUAGE_NAMES[code], callback_data=ConfigCB(action="setlang", value=code))
    keyboard.button(text=_("« Back"), callback_data=ConfigCB(action="home"))
    keyboard.adjust(3, 1)
    return _("Choose your language:"), keyboard.as_markup()


def timezone_view(user: User) -> View:
    keyboard = InlineKeyboardBuilder()
    for zone in COMMON_ZONES:
        mark = "• " if zone == user.timezone else ""
        keyboard.button(text=mark + zone, callback_data=ConfigCB(action="settz", value=zone))
    keyboard.button(text=_("✍️ Type another"), callback_data=ConfigCB(action="typetz"))
    keyboard.button(text=_("« Back"), callback_data=ConfigCB(action="home"))
    keyboard.adjust(2)
    text = _("Choose your time zone (used for digests and reports). Now: {zone}").format(zone=user.timezone)
    return text, keyboard.as_markup()


def timezone_prompt() -> str:
    return _("Send a city or zone name like <code>Europe/Paris</code>, or an offset like <code>UTC+3</code>. /cancel to stop.")


def timezone_invalid(value: str) -> str:
    return _("I don't know the time zone “{value}”. Try a name like <code>Asia/Tokyo</code> or an offset like <code>UTC-5</code>.").format(
        value=html.quote(value[:64])
    )
