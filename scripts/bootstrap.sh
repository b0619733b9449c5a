#!/usr/bin/env bash
# Creates .venv and installs the project into it (with optional extras).
# Usage: scripts/bootstrap.sh [extras]   e.g. scripts/bootstrap.sh dev
# On Debian as root it installs what is missing (python3-venv) with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

apt_install() {
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "missing system packages: $* (install them, then run again)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "Hybrid Trader needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1)" >&2
  exit 1
}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || apt_install python3-venv
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-${1:-base}
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${1:+[$1]}"
  touch "$stamp"
fi
