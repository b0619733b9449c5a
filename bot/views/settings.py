"""/config: language, time zone and notification switches."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from aiogram import html
from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import gettext as _

from bot.i18n import N_
from bot.views import View
from bot.views.common import Button, keyboard, on_off
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
    buttons: list[Button] = [(_("🌐 Language"), ConfigCB(action="lang")), (_("🕒 Time zone"), ConfigCB(action="tz"))]
    buttons += [
        (f"{'✅' if user.wants(kind) else '❌'} {_(NOTIFY_NAMES[kind])}", ConfigCB(action="notify", value=kind))
        for kind in Notify
    ]
    return "\n".join(lines), keyboard(buttons)


def language_view(user: User) -> View:
    buttons: list[Button] = [
        (("• " if code == user.locale else "") + LANGUAGE_NAMES[code], ConfigCB(action="setlang", value=code))
        for code in LANGUAGES
    ]
    buttons.append((_("« Back"), ConfigCB(action="home")))
    return _("Choose your language:"), keyboard(buttons, (3, 1))


def timezone_view(user: User) -> View:
    buttons: list[Button] = [
        (("• " if zone == user.timezone else "") + zone, ConfigCB(action="settz", value=zone)) for zone in COMMON_ZONES
    ]
    buttons += [(_("✍️ Type another"), ConfigCB(action="typetz")), (_("« Back"), ConfigCB(action="home"))]
    text = _("Choose your time zone (used for digests and reports). Now: {zone}").format(zone=user.timezone)
    return text, keyboard(buttons)


def timezone_prompt() -> str:
    return _("Send a city or zone name like <code>Europe/Paris</code>, or an offset like <code>UTC+3</code>. /cancel to stop.")


def timezone_invalid(value: str) -> str:
    return _("I don't know the time zone “{value}”. Try a name like <code>Asia/Tokyo</code> or an offset like <code>UTC-5</code>.").format(
        value=html.quote(value[:64])
    )
