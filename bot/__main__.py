"""`python -m bot run | console | migrate | worker | backtest` — the run contract of DESIGN.md."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Coroutine
from typing import Any


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    # Start-up builds a heap that lives until exit; collecting it while it grows cost `run` ~2 s of
    # full passes here. `run` and `worker` turn the collector back on in bot/gc_tuning.py settle(),
    # once it is frozen; the other verbs as soon as the arguments are read.
    gc.disable()
    from bot.settings import NO_TOKEN_HINT, Settings

    parser = argparse.ArgumentParser(prog="python -m bot", description="Hybrid Trader")
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("run", help="the bot, the web view and (unless WORKERS=external) the workers")
    console = verbs.add_parser("console", help="chat with the bot in this terminal, offline, no token")
    console.add_argument("--user-id", type=int, default=1, help="your Telegram user id in the console")
    console.add_argument("--lang", default="en", help="your Telegram language (en, ru, es)")
    verbs.add_parser("worker", help="the workers alone (feed, alerts, agents, scheduler, outbox), for WORKERS=external")
    backtest = verbs.add_parser("backtest", help="agents and consensus over history (simulated or a CSV)")
    migrate = verbs.add_parser("migrate", help="upgrade the database to the latest schema")
    migrate.add_argument("revision", nargs="?", default="head")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["backtest"]:  # its arguments need numpy and the agents: only for this verb
        from bot.backtest import add_arguments

        add_arguments(backtest)
    args = parser.parse_args(argv)
    if args.verb not in ("run", "worker"):
        gc.enable()
    if args.verb == "backtest":
        from bot import backtest as backtest_cli

        return backtest_cli.main(args)

    settings = Settings()
    # A configuration refusal needs only the settings: answer it before aiogram, the app and any connection.
    if args.verb == "run" and settings.bot_token is None:
        print(NO_TOKEN_HINT)
        gc.enable()
        if not _offer_console():
            return 2
    elif args.verb in ("run", "worker") and (problem := settings.start_problem(args.verb)) is not None:
        print(problem)
        return 2
    from bot.observability import configure_logging, wants_json

    # JSON lines for log collectors; plain text when a person watches a terminal.
    configure_logging(
        settings.log_level if args.verb != "console" else "WARNING",
        json_lines=args.verb != "console" and wants_json(settings.log_format, interactive=sys.stderr.isatty()),
    )
    if args.verb == "worker":
        from bot.worker import run_worker

        return _run(run_worker(settings, started))
    if args.verb == "run" and settings.bot_token is not None:
        from bot.runner import run

        return _run(run(settings, started))
    if args.verb in ("run", "console"):
        from bot.console import run_console

        user_id, lang = getattr(args, "user_id", 1), getattr(args, "lang", "en")
        return asyncio.run(run_console(settings, user_id=user_id, language=lang))
    from bot import migrate as migrations

    if settings.embedded_db:
        settings.ensure_data_dir()
    migrations.upgrade(settings.db_url, args.revision)
    print(f"database at revision {migrations.head(settings.db_url) if args.revision == 'head' else args.revision}")
    return 0


def _run(main: Coroutine[Any, Any, int]) -> int:
    """Serve on uvloop where it is installed (about a third less CPU per update than asyncio's loop)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _offer_console() -> bool:
    if not sys.stdin.isatty():
        return False
    try:
        answer = input("Start the offline console now? [Y/n] ").strip().lower()
    except EOFError:
        return False
    return answer in ("", "y", "yes")


if __name__ == "__main__":
    sys.exit(main())
