"""Telegram's HTML parse mode, as its Bot API server checks it.

A message whose text breaks these rules is refused with 400 "Bad Request: can't
parse entities": the user sees nothing. Only the tags Telegram documents are
accepted; ``<``, ``>`` and ``&`` outside a tag or an entity must be escaped,
and only the named entities ``&lt; &gt; &amp; &quot;`` (plus numeric ones) exist.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

TAGS = frozenset({
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "tg-emoji", "code",
    "pre", "blockquote",
})  # fmt: skip
ENTITIES = frozenset({"lt", "gt", "amp", "quot"})
_AMPERSAND = re.compile(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)")


class _Checker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []
        self.error: str | None = None

    def fail(self, why: str) -> None:
        self.error = self.error or why

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in TAGS:
            self.fail(f"Unsupported start tag \"{tag}\"")
        self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.fail(f"Unexpected end tag \"{tag}\"")
        else:
            self.open.pop()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.fail(f"Unsupported start tag \"{tag}\"")

    def handle_data(self, data: str) -> None:
        if "<" in data or ">" in data:
            self.fail("Unescaped angle bracket")

    def handle_entityref(self, name: str) -> None:
        if name not in ENTITIES:
            self.fail(f"Unsupported HTML entity \"&{name};\"")

    def handle_decl(self, decl: str) -> None:
        self.fail("Unsupported declaration")

    def handle_pi(self, data: str) -> None:
        self.fail("Unsupported processing instruction")

    def handle_comment(self, data: str) -> None:
        self.fail("Unsupported comment")


def html_error(text: str) -> str | None:
    """Why Telegram would refuse ``text`` in HTML parse mode, or None when it parses."""
    if _AMPERSAND.search(text):
        return "Unescaped ampersand"
    checker = _Checker()
    checker.feed(text)
    checker.close()
    if checker.error:
        return checker.error
    if checker.open:
        return f"Can't find end tag corresponding to start tag \"{checker.open[-1]}\""
    return None
