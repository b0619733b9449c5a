"""Scheduled digests: a user's trading performance, daily and weekly, sent at their local evening."""

from __future__ import annotations

from aiogram.utils.i18n import gettext as _

from bot.views import View
from bot.views.analytics import performance_text
from domain.analytics.service import PerformanceReport


def performance_digest(report: PerformanceReport, tier_code: str, *, weekly: bool) -> View:
    head = _("<b>📬 Your weekly digest</b>") if weekly else _("<b>📬 Your daily digest</b>")
    tail = _("Digests can be switched off in /config.")
    return "\n\n".join([head, performance_text(report, tier_code), tail]), None
