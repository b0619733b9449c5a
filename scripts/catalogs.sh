#!/usr/bin/env bash
# Refresh the gettext catalogs: extract msgids, merge into en/ru/es, compile .mo.
# Fill the new empty msgstr entries in locales/*/LC_MESSAGES/messages.po, then run again.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
"$py" -m babel.messages.frontend extract -F babel.cfg -k N_ -k __ -k _ -k ngettext:1,2 -k NP_:1,2 \
  --no-location --omit-header --sort-output -o locales/messages.pot . >/dev/null
"$py" -m babel.messages.frontend update -i locales/messages.pot -d locales -D messages \
  --no-fuzzy-matching --ignore-obsolete >/dev/null
"$py" -m babel.messages.frontend compile -d locales -D messages --statistics
