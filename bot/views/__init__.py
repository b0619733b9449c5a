"""The text layer: each module turns domain dataclasses into (text, keyboard).

Handlers call these; nothing else formats user-facing text. Every string goes
through gettext (translate first, then format) and user input is HTML-escaped.
"""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup

View = tuple[str, InlineKeyboardMarkup | None]
