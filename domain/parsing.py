"""Numbers typed by users or carried in button data, parsed one way everywhere.

Every id, count, volume, price, percent and duration from outside goes through
these helpers. They accept ASCII digits only (``str.isdigit`` also accepts "²"
and "٣", which ``int()`` then refuses or reads differently), bound integers to
what a database column holds (int64) and floats to finite values within the
caller's range (``1e308`` overflows arithmetic later; exponents are not a way
anyone types a price). They return None for anything else, and the caller raises
its own typed error, so the user gets the answer that fits ("alert 5 not found",
"the value for volume is not valid").
"""

from __future__ import annotations

import re

INT64_MAX = 2**63 - 1
MAX_TEXT = 32  # longer "numbers" are not numbers anyone typed on purpose
MAX_MAGNITUDE = 1e12  # above any price, volume or percent a trading command can mean

_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_DURATION = re.compile(r"([0-9]{1,12})\s*([smhd])", re.ASCII | re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def looks_numeric(raw: str) -> bool:
    """Whether the user meant a number (any script's digits, an optional '#'): an id they typed, valid or not."""
    text = raw.strip().removeprefix("#")
    return bool(text) and all(c.isdigit() for c in text)


def parse_int(raw: str, *, low: int, high: int) -> int | None:
    """An integer in ``low..high`` written in ASCII digits (optional sign); None otherwise."""
    text = raw.strip()
    if len(text) > MAX_TEXT or not _INTEGER.fullmatch(text):
        return None
    value = int(text)
    return value if low <= value <= high else None


def parse_id(raw: str) -> int | None:
    """A database or terminal id (``42`` or ``#42``): 1..int64 max; None otherwise."""
    return parse_int(raw.strip().removeprefix("#"), low=1, high=INT64_MAX)


def parse_count(raw: str, *, low: int, high: int) -> int | None:
    """A count clamped into ``low..high`` ("/history 100000" means the longest window); None unless ASCII
    digits."""
    text = raw.strip()
    if len(text) > MAX_TEXT or not text.isascii() or not text.isdigit():
        return None
    return min(max(int(text), low), high)


def parse_decimal(raw: str, *, low: float = -MAX_MAGNITUDE, high: float = MAX_MAGNITUDE) -> float | None:
    """A finite decimal in ``low..high`` ("1.5", "1,5", ".5"); no exponents, no inf/nan; None otherwise."""
    text = raw.strip().replace(",", ".")
    if len(text) > MAX_TEXT or not _DECIMAL.fullmatch(text):
        return None
    value = float(text)
    return value if low <= value <= high else None


def parse_duration(raw: str, *, max_seconds: int) -> int | None:
    """Seconds in "90s", "15m", "4h", "2d" (1 s up to ``max_seconds``); None otherwise."""
    match = _DURATION.fullmatch(raw.strip())
    if match is None:
        return None
    seconds = int(match.group(1)) * _UNITS[match.group(2).lower()]
    return seconds if 0 < seconds <= max_seconds else None
