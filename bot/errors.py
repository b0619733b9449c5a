"""ErrorDNA: every exception becomes a stable code, a reference id and a localized message.

Expected failures (:class:`domain.errors.DomainError`) carry their own code.
Anything else gets a fingerprint of where it happened (exception type and the
innermost frame of our own code), so the same bug always has the same code and
``/admin`` can count them. Each occurrence is logged with its context, stored
in ``error_events`` and, when SENTRY_DSN is set, sent to Sentry with the user id
hashed. The context names the command or button prefix, never what the user
typed; text typed at a secret step is scrubbed from the log line, the stored
event and the Sentry event. Parameters formatted into the (HTML) message are
escaped: they may carry user text.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import sys
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from collections.abc import Sequence
from typing import Any

from prometheus_client import Counter
from aiogram import html
from aiogram.exceptions import TelegramAPIError
from aiogram.utils.i18n import gettext as _
from redis.exceptions import RedisError
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLTimeoutError  # no free pooled connection in time: overloaded
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import N_
from domain import errors as de
from domain.db.repositories import add_error_event

log = logging.getLogger("hybrid.errors")

_OUR_PACKAGES = ("bot", "handlers", "dialogs", "domain", "workers")


@dataclass(frozen=True, slots=True)
class Report:
    code: str
    ref: str
    expected: bool


def dna(exc: BaseException) -> str:
    if isinstance(exc, de.DomainError):
        return exc.code
    if isinstance(exc, OperationalError | DBAPIError | SQLTimeoutError) or _database_unreachable(exc):
        return "SYS-DB"
    if isinstance(exc, RedisError):
        return "SYS-REDIS"
    if isinstance(exc, TelegramAPIError):
        return "TG-API"
    return "BUG-" + _fingerprint(exc)


def _to_sentry(exc: BaseException, code: str, ref: str, user_hash: str, hidden: tuple[str, ...]) -> None:
    # init_sentry imports sentry_sdk: while it is not loaded there is no client to send to
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is None:
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("error_dna", code)
        scope.set_tag("ref", ref)
        scope.set_user({"id": user_hash})
        if hidden:
            scope.add_event_processor(lambda event, hint: scrub_tree(event, hidden))
        sentry_sdk.capture_exception(exc)


def _database_unreachable(exc: BaseException) -> bool:
    """A connection to PostgreSQL failing (refused, reset, server starting up): asyncpg raises these
    unwrapped while SQLAlchemy opens a pooled connection."""
    # asyncpg is loaded by the first PostgreSQL connection: before that, none of its errors can exist
    asyncpg = sys.modules.get("asyncpg")
    unreachable = (asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) if asyncpg is not None else ()
    if not isinstance(exc, (OSError, *unreachable)):
        return False
    return any("/asyncpg/" in f.filename or "/sqlalchemy/" in f.filename for f in traceback.extract_tb(exc.__traceback__))


def _fingerprint(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if _is_ours(f.filename)] or frames
    where = f"{ours[-1].filename.rsplit('/', 2)[-2:]}:{ours[-1].name}" if ours else "?"
    return hashlib.sha1(f"{type(exc).__qualname__}@{where}".encode()).hexdigest()[:6].upper()


def _is_ours(filename: str) -> bool:
    parts = filename.replace("\\", "/").split("/")
    return "site-packages" not in parts and any(p in _OUR_PACKAGES for p in parts[-3:-1])


def hash_user(user_id: int | None, salt: bytes) -> str | None:
    if user_id is None:
        return None
    return hashlib.blake2b(str(user_id).encode(), key=salt[:64], digest_size=6).hexdigest()


class ErrorReporter:
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], salt: bytes, counter: Counter | None = None) -> None:
        self._sessionmaker = sessionmaker
        self._salt = salt
        self._counter = counter

    async def report(
        self, exc: BaseException, *, context: str, user_id: int | None, hide: Sequence[str] = ()
    ) -> Report:
        """Count, log, store and (when unexpected) send ``exc`` to Sentry; the texts in ``hide`` leave in none of them."""
        code = dna(exc)
        ref = secrets.token_hex(4).upper()
        expected = isinstance(exc, de.DomainError)
        user_hash = hash_user(user_id, self._salt)
        hidden = tuple(sorted((s for s in hide if s), key=len, reverse=True))
        if self._counter is not None:
            self._counter.labels(code).inc()
        if expected:
            log.info("%s ref=%s in %s user=%s: %s", code, ref, context, user_hash, scrub(str(exc), hidden))
        else:
            if hidden:  # the traceback's messages may quote the secret: log a scrubbed rendering of it
                rendered = scrub("".join(traceback.format_exception(exc)).rstrip(), hidden)
                log.error("%s ref=%s in %s user=%s\n%s", code, ref, context, user_hash, rendered)
            else:
                log.error("%s ref=%s in %s user=%s", code, ref, context, user_hash, exc_info=exc)
            _to_sentry(exc, code, ref, user_hash, hidden)
        try:
            async with self._sessionmaker() as session:
                await add_error_event(
                    session,
                    at=datetime.now(UTC),
                    code=code,
                    ref=ref,
                    user_hash=user_hash,
                    context=context[:128],
                    message=scrub(f"{type(exc).__name__}: {exc}", hidden)[:2000],
                )
                await session.commit()
        except Exception:  # the database may be what failed; the user still gets an answer
            log.warning("could not store error event %s", ref, exc_info=True)
        return Report(code, ref, expected)


SCRUBBED = "[secret]"


def scrub(text: str, hidden: Sequence[str]) -> str:
    for secret in hidden:
        text = text.replace(secret, SCRUBBED)
    return text


def scrub_tree(value: Any, hidden: Sequence[str]) -> Any:
    """``value`` (a Sentry event: dicts, lists, strings) with every secret replaced, keys included."""
    if isinstance(value, str):
        return scrub(value, hidden)
    if isinstance(value, dict):
        return {scrub_tree(k, hidden): scrub_tree(v, hidden) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(scrub_tree(v, hidden) for v in value)
    return value


# Code -> msgid. Params from the exception are formatted into the translation.
_MESSAGES: dict[str, str] = {
    de.InvalidInput.code: N_("That input doesn't look right. Check it and try again."),
    de.NotFound.code: N_("Nothing found. It may have been removed."),
    de.Forbidden.code: N_("You don't have access to that."),
    de.QuotaExceeded.code: N_("You've used all {limit} of your {quota} for now. Upgrade your plan for more."),
    de.FeatureLocked.code: N_("This needs the {tier} plan."),
    "SYS-DB": N_("Our database is briefly unavailable. Nothing was changed; please retry in a minute."),
    "SYS-REDIS": N_("Our cache is briefly unavailable. Nothing was changed; please retry in a minute."),
    "TG-API": N_("Telegram rejected our reply. Please try again."),
    # support, staff, broadcasts
    "SUP-NOT-FOUND": N_("No such ticket among yours. /support lists your tickets."),
    "SUP-CLOSED": N_("Ticket #{ticket} is closed. Open a new one in /support."),
    "SUP-NO-PAYMENT": N_("That payment isn't one of yours, so it can't be attached. /paysupport lists your payments."),
    "ADM-NO-USER": N_("No user matches “{ref}”. Use the numeric id or @username of someone who has started the bot."),
    "ADM-FORBIDDEN": N_("You don't have access to that."),
    "BC-NOT-FOUND": N_("No such broadcast draft."),
    "BC-EMPTY": N_("Nobody is in that segment: nothing to send."),
    # market and trading
    "MKT-UNAVAILABLE": N_("The trading server is unreachable right now. Nothing was sent; please retry shortly."),
    "MKT-UNKNOWN-SYMBOL": N_("I don't know the symbol {symbol}. Similar: {suggestions}"),
    "MKT-NO-QUOTES": N_("No quotes for {symbol} right now."),
    "TRD-INVALID": N_("The value for {field} is not valid. Check it and try again."),
    "TRD-STOPS-SIDE": N_("The {field} level is on the wrong side of the price for this order."),
    "TRD-VOLUME-RANGE": N_("Volume must be between {low} and {high} lots, in steps of {step}."),
    "TRD-LIMIT-RANGE": N_("{field} must be between {low} and {high}."),
    "TRD-REFUSED": N_("This order is not yours or no longer exists. Nothing was done."),
    "TRD-EXPIRED": N_("This preview expired or your account changed. Nothing was sent; make a new order."),
    "TRD-NO-POSITION": N_("There is no open position {ticket} on your account."),
    "TRD-NO-POSITIONS": N_("No matching open positions."),
    "TRD-UNKNOWN": N_("The trading server did not answer in time; order {order} may have been placed. We are "
                      "checking with the broker and will message you its outcome. Until then no new order goes to "
                      "this account, so it can't be doubled."),
    "TRD-UNSETTLED": N_("Order {order} on this account has no known outcome yet: we are checking it with the broker "
                        "and will message you. A new order now could double a position, so nothing was sent; try "
                        "again once you have the answer."),
    "TRD-BUSY": N_("Another order on this account is being sent right now. Nothing was sent; try again in a moment."),
    "TRD-NO-LIVE": N_("No live account is linked. Link one in /trading."),
    "TRD-LINK-FAILED": N_("The broker refused this login, server or password. Nothing was stored."),
    "TRD-NO-TERMINAL": N_("Every trading terminal is busy serving another live account, so yours can't be "
                          "linked right now. Nothing was stored; our team has been told. Please try again later."),
    "TRD-ACCOUNT-TAKEN": N_("This account is already linked by another user. Nothing was stored."),
    "TRD-DEMO-LOGIN": N_("This is a demo account, not a live one. Nothing was stored; your demo account is "
                         "always available in /trading."),
    "TRD-TERMINAL-MISMATCH": N_("Your trading terminal was not on your account, so nothing was sent. It has been "
                                "reconnected; check /positions and try again."),
    # auto-trading
    "AUT-RANGE": N_("{field} must be between {low} and {high}."),
    "AUT-SYMBOLS": N_("Auto-trading symbols: at most {limit}. Remove one first."),
    "AUT-REFUSED": N_("These buttons are not yours or are out of date. Nothing was changed; open /trading again."),
    "ALR-SYNTAX": N_("I couldn't read that alert. Examples: /alerts add EURUSD > 1.1050, "
                     "/alerts add XAUUSD cross 2400, /alerts add BTCUSD move 2% 60m"),
    "ALR-NOT-FOUND": N_("Alert {id} not found."),
    "ALR-INVALID": N_("That alert has an invalid {field}."),
    "BIL-TRIAL-USED": N_("You've already used your free trial. /premium shows the plans."),
    "BIL-SUBSCRIBED": N_("You're already on a plan that includes this."),
    "BIL-NO-CARD": N_("Card payments aren't available right now. You can pay with Telegram Stars in /premium."),
    "BIL-NO-PAYMENT": N_("No refundable payment with that charge id."),
    "BIL-NO-SUB": N_("There's no active subscription to manage here. /billing shows yours."),
    "BIL-NO-PLAN": N_("That plan isn't on sale. /premium shows the plans."),
    "BIL-PROVIDER": N_("The payment provider didn't answer. Nothing was charged; please try again shortly."),
    # AI agents
    "AI-QUOTA": N_("You've used all your AI analyses for today (daily limit: {limit}). They renew at {renews} your "
                   "time (midnight UTC); /premium shows plans with more."),
    "AI-WATCHLIST-FULL": N_("Your watchlist is full (symbols: {limit}). Unfollow one in /signals, or get room for "
                            "more with /premium."),
    "AI-BAD-PAGE": N_("That page doesn't exist. /signals shows the latest."),
}
_GENERIC = N_("Something went wrong on our side. We've logged it and will fix it.")
# The message of a code whose named parameter came empty (nothing to list after "Similar:").
_WHEN_EMPTY = {"MKT-UNKNOWN-SYMBOL": ("suggestions", N_("I don't know the symbol {symbol}."))}


def user_message(report: Report, params: dict[str, Any] | None = None) -> str:
    """The localized text for a report (call inside the user's locale)."""
    msgid = _MESSAGES.get(report.code, _GENERIC)
    empty = _WHEN_EMPTY.get(report.code)
    if empty is not None and not (params or {}).get(empty[0]):
        msgid = empty[1]
    body = _(msgid)
    try:  # parameters may carry what the user typed (a symbol, a field): escaped for Telegram's HTML
        body = body.format(**{k: html.quote(v) if isinstance(v, str) else v for k, v in (params or {}).items()})
    except (KeyError, IndexError, ValueError):
        body = _(_GENERIC)
    return _("{body}\nCode {code} · ref {ref}: quote it if you contact support.").format(
        body=body, code=report.code, ref=report.ref
    )
