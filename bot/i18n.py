"""Languages: gettext catalogs under ``locales/`` (en, ru, es) and the locale middleware.

Translate first, then format: ``_("Balance: {v}").format(v=...)``. ``N_`` marks a
msgid for extraction without translating it (for text resolved later, per locale);
``NP_`` does the same for a counted phrase (singular, plural), rendered later with
``ngettext`` by the value it counts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiogram.types import TelegramObject, User as TgUser
from aiogram.utils.i18n import I18n, I18nMiddleware

from domain.users import DEFAULT_LANGUAGE, LANGUAGES, User

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
DOMAIN = "messages"


def N_(msgid: str) -> str:
    return msgid


class Plural(tuple[str, str]):
    """A counted phrase marked with ``NP_``: (singular msgid, plural msgid)."""

    __slots__ = ()


def NP_(singular: str, plural: str) -> Plural:
    return Plural((singular, plural))


def create_i18n() -> I18n:
    i18n = I18n(path=LOCALES_DIR, default_locale=DEFAULT_LANGUAGE, domain=DOMAIN)
    missing = set(LANGUAGES) - set(i18n.available_locales)
    if missing:
        raise RuntimeError(f"compiled catalogs missing for {sorted(missing)}: run `pybabel compile -d locales`")
    return i18n


def locale_of(user: User | None, tg_user: TgUser | None) -> str:
    """The stored choice wins over Telegram's language_code; English otherwise."""
    if user is not None:
        return user.locale
    code = (tg_user.language_code or "").split("-")[0].lower() if tg_user else ""
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


class LocaleMiddleware(I18nMiddleware):
    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        locale = locale_of(data.get("user"), data.get("event_from_user"))
        data["locale"] = locale
        return locale

