"""Counted phrases go through ngettext: no msgid builds "{n} <plural noun>" with a fixed plural ("Only 1 agents
take a side"), and every plural entry reads right for 1, 2, 5 and 21 in Russian (three forms) and for 1 and 2 in
English and Spanish."""

from __future__ import annotations

import gettext
import re
import string
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

LOCALES = Path(__file__).resolve().parents[2] / "locales"

# Nouns whose count shows in our texts. Lots are not here: volumes are decimals (0.01 lots), which no plural rule
# of ours counts.
NOUNS = (
    "agents|days|alerts|signals|users|deals|orders|positions|bars|trades|symbols|traders|analyses|requests|"
    "messages|hours|minutes|weeks|months|tickets|votes|words|levels|lines|times|points|accounts|payments|invoices|"
    "referrals|friends|members|seconds|agent|day|alert|signal|user|deal|order|position|bar|trade|symbol|trader|"
    "analysis|request|ticket|vote|word|level|line|point|account|payment|friend"
)
# A placeholder, at most two words (open, extra AI…), then a counted noun: "{voters} agents", "{n} extra AI analyses".
COUNTED = re.compile(r"\{(\w+)\}\s+(?:(?!lots\b)[A-Za-z-]+\s+){0,2}?(?:" + NOUNS + r")\b")
# Placeholders that never hold a count: names, symbols, sides, times, prices.
NOT_COUNTS = {"tier", "symbol", "side", "agent", "time", "kind", "direction", "price", "name", "feature", "what",
              "date", "account", "health", "level", "entry", "rsi", "adx", "command", "leaning", "volume", "tf", "field",
              "order", "ticket", "veto_percentile"}  # fmt: skip


def _catalog() -> list[object]:
    with (LOCALES / "messages.pot").open("rb") as f:
        return list(read_po(f))


def _fields(text: str) -> set[str]:
    return {name for _t, name, _s, _c in string.Formatter().parse(text) if name}


def test_the_scan_finds_a_fixed_plural() -> None:
    """The check itself: the phrase the issue quotes, and the shapes it must catch."""
    assert COUNTED.search("Only {voters} agents take a side")
    assert COUNTED.search("Send it to {n} users?") and COUNTED.search("⭐ {n} extra AI analyses")
    assert COUNTED.search("you have {value} open positions")
    assert not COUNTED.search("Agents taking a side: {voters}") and not COUNTED.search("{side} {volume} lots")


def test_no_counted_phrase_uses_a_fixed_plural() -> None:
    fixed = []
    for message in _catalog():
        if not message.id or isinstance(message.id, tuple):  # type: ignore[attr-defined]
            continue
        for match in COUNTED.finditer(message.id):  # type: ignore[attr-defined]
            if match.group(1) not in NOT_COUNTS:
                fixed.append(message.id)  # type: ignore[attr-defined]
    assert not fixed, "counted phrases built with a fixed plural (use ngettext or NP_):\n" + "\n".join(fixed)


def _plurals() -> list[tuple[str, str]]:
    return [m.id for m in _catalog() if isinstance(m.id, tuple)]  # type: ignore[attr-defined,misc]


def test_the_known_counted_phrases_are_plural_entries() -> None:
    singulars = {s for s, _p in _plurals()}
    assert any(s.startswith("Only {voters} agent takes a side") for s in singulars)
    assert "{left} of {limit} alert left." in singulars and "{n} dashed line: your alert level" in singulars
    assert len(singulars) >= 20


@pytest.mark.parametrize(("lang", "counts"), [("ru", {1: 0, 21: 0, 2: 1, 5: 2}), ("es", {1: 0, 2: 1}),
                                              ("en", {1: 0, 2: 1})])  # fmt: skip
def test_every_plural_entry_reads_right_for_each_count(lang: str, counts: dict[int, int]) -> None:
    translation = gettext.translation("messages", LOCALES, languages=[lang])
    with (LOCALES / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        catalog = read_po(f, locale=lang)
    checked = 0
    for singular, plural in _plurals():
        forms = catalog[singular].string
        assert isinstance(forms, tuple) and len(forms) == len(set(counts.values())), (lang, singular, forms)
        assert all(forms), (lang, singular, forms)
        if lang != "es":  # Spanish has invariant nouns ("1 análisis", "5 análisis")
            assert forms[0] != forms[-1], (lang, singular)  # one and many read differently
        values = {name: 7 for name in _fields(plural)}
        for n, form in counts.items():
            rendered = translation.ngettext(singular, plural, n)
            assert rendered == forms[form], (lang, singular, n)
            assert _fields(rendered) <= _fields(plural) | _fields(singular), (lang, singular, n)
            rendered.format(**values)  # every placeholder it uses is one the code fills
        checked += 1
    assert checked >= 20
