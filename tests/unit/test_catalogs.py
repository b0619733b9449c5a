"""Every string a user can see is translated in en, ru and es, and the compiled .mo is current."""

import gettext
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot.i18n import DOMAIN, LOCALES_DIR
from domain.users import LANGUAGES

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "N_": None, "__": None, "ngettext": (1, 2)}
PLACEHOLDER = re.compile(r"\{(\w*)[^{}]*\}")


def _code_msgids() -> set[str]:
    found: set[str] = set()
    for package in ("bot", "handlers", "dialogs", "domain", "workers"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords=KEYWORDS
        ):
            found.add(message[0] if isinstance(message, tuple) else message)
    return found


MSGIDS = _code_msgids()


def test_code_has_messages() -> None:
    assert len(MSGIDS) > 50


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_complete_and_compiled(language: str) -> None:
    po_path = LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with po_path.open("rb") as f:
        catalog = read_po(f)
    entries = {(m.id[0] if isinstance(m.id, tuple) else m.id): m for m in catalog if m.id}
    missing = sorted(MSGIDS - entries.keys())
    assert not missing, f"{language}: msgids not in the catalog (run scripts/catalogs.sh): {missing[:5]}"
    with (po_path.with_suffix(".mo")).open("rb") as f:
        compiled = gettext.GNUTranslations(f)
    for msgid in sorted(MSGIDS):
        entry = entries[msgid]
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        assert all(strings), f"{language}: untranslated {msgid!r}"
        assert not entry.fuzzy, f"{language}: fuzzy {msgid!r}"
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        wanted = {name for i in ids for name in PLACEHOLDER.findall(i)}
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) == wanted, f"{language}: placeholders differ in {msgid!r}"
        if isinstance(entry.id, tuple):
            assert compiled.ngettext(entry.id[0], entry.id[1], 5) in strings, f"{language}: .mo is stale for {msgid!r}"
        else:
            assert compiled.gettext(msgid) == entry.string, f"{language}: .mo is stale for {msgid!r}"
