#!/usr/bin/env bash
# Install what the tests need and run the whole suite.
# The integration tests start their own PostgreSQL, Redis and nginx on loopback;
# with CI=true they must run (a missing server fails the run, never skips).
set -euo pipefail
cd "$(dirname "$0")"
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v chromium >/dev/null || missing+=(chromium)
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx)  # the shipped proxy config's test
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "not installing ${missing[*]} (not root): their tests will be skipped" >&2
  fi
fi
scripts/bootstrap.sh dev
# One pytest process per core (pytest-xdist); each starts its own servers. TEST_WORKERS=0: one process.
exec .venv/bin/python -m pytest -n "${TEST_WORKERS:-auto}" "$@"
