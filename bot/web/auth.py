"""Who is asking the web view: Telegram WebApp ``initData`` or a signed link token.

* ``initData`` (a Mini App opened from a WebApp button) is checked per Telegram's
  spec: ``secret = HMAC_SHA256(key="WebAppData", msg=bot_token)``, then
  ``hash == hex(HMAC_SHA256(key=secret, msg=data_check_string))`` where the
  data-check-string is every received field but ``hash``, sorted by key, as
  ``key=value`` lines. ``auth_date`` must be at most one hour old (and not
  from the future beyond a small clock skew).
* A link token (a plain link, outside Telegram) is ``<payload>.<mac>``, both
  base64url: the payload is ``{"u": user_id, "e": expiry}``, the mac an
  HMAC-SHA256 under a key derived from ``SECRET_KEY``. Short-lived.

Anything else raises :class:`Unauthorized`. The user id the API serves data for
comes only from here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

INIT_DATA_MAX_AGE = 3600  # seconds: Telegram's initData older than this is refused
LINK_TTL = 15 * 60  # seconds a signed link stays valid
CLOCK_SKEW = 60  # seconds of auth_date in the future tolerated
MAX_INIT_DATA = 4096  # bytes; Telegram's initData is far smaller


class Unauthorized(Exception):
    """The request carries no valid proof of who sent it (answered with 401, reason logged only)."""


@dataclass(frozen=True, slots=True)
class WebUser:
    id: int
    first_name: str = ""
    language: str | None = None
    via: str = "init_data"  # or "link"


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_string(fields: dict[str, str]) -> bytes:
    return "\n".join(f"{k}={fields[k]}" for k in sorted(fields)).encode()


def sign_init_data(bot_token: str, fields: dict[str, Any]) -> str:
    """A valid ``initData`` query string for ``fields`` (what Telegram would send; tests and benchmarks).

    ``user`` given as a dict is JSON-encoded like Telegram does.
    """
    plain = {k: json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else str(v) for k, v in fields.items()}
    secret = _hmac(b"WebAppData", bot_token.encode())
    plain["hash"] = hmac.new(secret, _check_string(plain), hashlib.sha256).hexdigest()
    return urlencode(plain, quote_via=quote)


class WebAuth:
    def __init__(
        self,
        bot_token: str,
        secret: bytes,
        *,
        max_age: int = INIT_DATA_MAX_AGE,
        link_ttl: int = LINK_TTL,
        clock: Callable[[], float] = time.time,
        old_secrets: Sequence[bytes] = (),
    ) -> None:
        """``secret`` signs links; links signed under one of ``old_secrets`` (before a SECRET_KEY rotation)
        are still accepted until they expire."""
        self._webapp_secret = _hmac(b"WebAppData", bot_token.encode()) if bot_token else None
        self._link_key = _hmac(secret, b"hybrid-trader/web-link/v1")
        self._link_keys = [self._link_key, *(_hmac(s, b"hybrid-trader/web-link/v1") for s in old_secrets if s)]
        self.max_age = max_age
        self.link_ttl = link_ttl
        self.clock = clock

    # -- Telegram initData ---------------------------------------------------------------------
    def verify_init_data(self, raw: str) -> WebUser:
        if self._webapp_secret is None:
            raise Unauthorized("no bot token: initData cannot be checked")
        if not raw or len(raw) > MAX_INIT_DATA:
            raise Unauthorized("initData missing or too long")
        try:
            pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise Unauthorized("initData is not a query string") from None
        fields = dict(pairs)
        if len(fields) != len(pairs):
            raise Unauthorized("initData repeats a field")
        received = fields.pop("hash", "")
        expected = hmac.new(self._webapp_secret, _check_string(fields), hashlib.sha256).hexdigest()
        # bytes, not str: compare_digest raises TypeError on a non-ASCII str (a 500 per forged request)
        if not hmac.compare_digest(expected.encode(), received.lower().encode("utf-8", "surrogateescape")):
            raise Unauthorized("initData hash mismatch")
        try:
            auth_date = int(fields["auth_date"])
        except (KeyError, ValueError):
            raise Unauthorized("initData without auth_date") from None
        now = self.clock()
        if now - auth_date > self.max_age:
            raise Unauthorized("initData expired")
        if auth_date - now > CLOCK_SKEW:
            raise Unauthorized("initData from the future")
        try:
            user = json.loads(fields["user"])
            user_id = int(user["id"])
        except (KeyError, ValueError, TypeError):
            raise Unauthorized("initData without a user") from None
        if user_id <= 0:
            raise Unauthorized("initData with an invalid user id")
        first = user.get("first_name")
        lang = user.get("language_code")
        return WebUser(
            user_id, first if isinstance(first, str) else "", lang if isinstance(lang, str) else None, "init_data"
        )

    # -- signed links ------------------------------------------------------------------------------
    def issue_link_token(self, user_id: int, ttl: int | None = None) -> str:
        expiry = int(self.clock()) + (self.link_ttl if ttl is None else ttl)
        payload = json.dumps({"u": int(user_id), "e": expiry}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(_hmac(self._link_key, payload))}"

    def verify_link_token(self, token: str) -> WebUser:
        if not token or len(token) > 512 or token.count(".") != 1:
            raise Unauthorized("malformed link token")
        body, mac = token.split(".")
        try:
            payload, signature = _unb64(body), _unb64(mac)
        except (binascii.Error, ValueError):
            raise Unauthorized("malformed link token") from None
        if not any([hmac.compare_digest(_hmac(key, payload), signature) for key in self._link_keys]):
            raise Unauthorized("link token signature mismatch")
        try:
            data = json.loads(payload)
            user_id, expiry = int(data["u"]), int(data["e"])
        except (KeyError, ValueError, TypeError):
            raise Unauthorized("link token payload") from None
        if self.clock() >= expiry:
            raise Unauthorized("link token expired")
        return WebUser(user_id, via="link")

    # -- one entry point ---------------------------------------------------------------------------
    def authenticate(self, authorization: str | None) -> WebUser:
        """``Authorization: tma <initData>`` or ``Authorization: link <token>``."""
        scheme, _, value = (authorization or "").strip().partition(" ")
        scheme = scheme.lower()
        try:
            if scheme == "tma":
                return self.verify_init_data(value.strip())
            if scheme == "link":
                return self.verify_link_token(value.strip())
        except (TypeError, ValueError, UnicodeError) as exc:  # hostile bytes are a refusal, never a 500
            raise Unauthorized(f"malformed credentials ({type(exc).__name__})") from None
        raise Unauthorized("no credentials")

    def link(self, base_url: str, user_id: int, page: str = "") -> str:
        """A plain link to the web view for ``user_id`` (``{WEB_PUBLIC_URL}/app/<page>?t=<token>``)."""
        return f"{base_url.rstrip('/')}/app/{page.lstrip('/')}?t={self.issue_link_token(user_id)}"
