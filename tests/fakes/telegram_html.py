"""Telegram's HTML parse mode, as the Bot API server checks it (tdlib's ``parse_html``).

Only Telegram's tags are allowed, every tag must be closed in order, a ``<``
must start a tag (``&lt; &gt; &amp; &quot;`` and numeric entities decode; any
other ``&`` is kept as text, as Telegram does). A text that breaks
these rules is refused with ``Bad Request: can't parse entities: ...``; the
fake Bot API answers 400 with that description, so a reply carrying unescaped
user text fails in tests exactly as it fails in production.
"""

from __future__ import annotations

import re

# Tag -> attributes it must carry (None: any attributes are ignored).
_TAGS: dict[str, tuple[str, ...]] = {
    "a": ("href",), "b": (), "strong": (), "i": (), "em": (), "u": (), "ins": (), "s": (), "strike": (),
    "del": (), "span": ("class",), "tg-spoiler": (), "code": (), "pre": (), "blockquote": (), "tg-emoji": ("emoji-id",),
}  # fmt: skip
_NAME = re.compile(r"[A-Za-z0-9-]*")
_ATTRIBUTE = re.compile(r"\s*([A-Za-z-]+)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>\"']+))?")


def entity_error(text: str) -> str | None:
    """Why Telegram would refuse ``text`` in HTML parse mode, or None when it parses."""
    opened: list[str] = []
    i = 0
    while i < len(text):
        if text[i] != "<":  # "&lt;" and the like decode; any other "&" is kept as text
            i += 1
            continue
        closing = text.startswith("</", i)
        start = i + (2 if closing else 1)
        name = _NAME.match(text, start).group(0).lower()  # type: ignore[union-attr]
        if not name:
            return f"Unexpected character {text[start:start + 1]!r} in tag at byte offset {i}"
        end = start + len(name)
        if closing:
            close = text.find(">", end)
            if close < 0 or text[end:close].strip():
                return f"Unclosed end tag at byte offset {i}"
            if not opened or opened[-1] != name:
                expected = f"</{opened[-1]}>" if opened else "nothing"
                return f"Unmatched end tag at byte offset {i}, expected {expected}, found </{name}>"
            opened.pop()
            i = close + 1
            continue
        if name not in _TAGS:
            return f'Unsupported start tag "{name}" at byte offset {i}'
        attributes: dict[str, str] = {}
        while True:
            if end >= len(text):
                return f'Unclosed start tag "{name}" at byte offset {i}'
            if text[end] == ">":
                break
            attribute = _ATTRIBUTE.match(text, end)
            if attribute is None or attribute.end() == end:
                return f'Unclosed start tag "{name}" at byte offset {i}'
            attributes[attribute.group(1).lower()] = (attribute.group(2) or "").strip("\"'")
            end = attribute.end()
        for required in _TAGS[name]:
            if required not in attributes:
                return f'Tag "{name}" must have attribute "{required}" at byte offset {i}'
        if name == "span" and attributes.get("class") != "tg-spoiler":
            return f'Tag "span" must have class "tg-spoiler" at byte offset {i}'
        opened.append(name)
        i = end + 1
    if opened:
        return f'Can\'t find end tag corresponding to start tag "{opened[-1]}"'
    return None
