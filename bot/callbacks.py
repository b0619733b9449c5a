"""Integers inside callback data, parsed like every other number from outside (``domain.parsing``).

Button data comes back from Telegram as text anyone can forge. Every integer
field of a ``CallbackData`` factory is a :data:`CallbackInt`: ASCII digits
within int64, so "²" or a 20-digit id never reaches a query (SQLite and
PostgreSQL refuse integers past int64). Data that does not parse matches no
handler, and the fallback answers that the button has expired.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator

from domain.parsing import INT64_MAX, parse_int


def _int64(value: Any) -> int:
    parsed = parse_int(value, low=-INT64_MAX, high=INT64_MAX) if isinstance(value, str) else value
    if not isinstance(parsed, int) or isinstance(parsed, bool) or not -INT64_MAX <= parsed <= INT64_MAX:
        raise ValueError("not an int64 in ASCII digits")
    return parsed


CallbackInt = Annotated[int, BeforeValidator(_int64)]
