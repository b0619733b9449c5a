"""Add translations and rebuild the catalogs in one step.

    python scripts/translate.py [TRANSLATIONS.json]

Extracts every msgid from the code, merges it into locales/{en,ru,es}, fills
entries from the optional JSON file, compiles the .mo files and lists what is
still untranslated (exit 1 if anything is). JSON format::

    {"Balance: {v}": {"ru": "Баланс: {v}", "es": "Saldo: {v}"},
     "{n} order": {"ru": ["{n} ордер", "{n} ордера", "{n} ордеров"], "es": ["{n} orden", "{n} órdenes"]}}

Plural msgids are keyed by their singular. English entries are filled with
the msgid itself. Existing translations are kept unless the JSON gives new ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "locales"
LANGUAGES = ("en", "ru", "es")


def main() -> int:
    given: dict[str, dict[str, object]] = {}
    if len(sys.argv) > 1:
        given = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    subprocess.run([str(ROOT / "scripts" / "catalogs.sh")], check=True, capture_output=True)
    missing: list[str] = []
    for language in LANGUAGES:
        path = LOCALES / language / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as f:
            catalog = read_po(f, locale=language)
        for message in catalog:
            if not message.id:
                continue
            key = message.id[0] if isinstance(message.id, tuple) else message.id
            if language == "en":
                message.string = message.id if isinstance(message.id, tuple) else message.id
            elif key in given and language in given[key]:
                value = given[key][language]
                message.string = tuple(value) if isinstance(value, list) else value  # type: ignore[assignment]
            message.flags.discard("fuzzy")
            strings = message.string if isinstance(message.string, tuple) else (message.string,)
            if not all(strings):
                missing.append(f"{language}: {key}")
        with path.open("wb") as f:
            write_po(f, catalog, width=120, no_location=True, sort_output=True)
    subprocess.run([str(ROOT / "scripts" / "catalogs.sh")], check=True, capture_output=True)
    for line in missing:
        print("untranslated", line)
    print(f"catalogs rebuilt; {len(missing)} untranslated")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
