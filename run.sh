#!/usr/bin/env bash
# Install Hybrid Trader into .venv and run it on embedded defaults
# (SQLite in ./var, in-memory stores, simulated MT5).
#   ./run.sh              the bot (needs BOT_TOKEN; without it, says how to get one)
#   ./run.sh console      try it offline in this terminal, no token
#   ./run.sh migrate      upgrade the database schema
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/python -m bot "${@:-run}"
