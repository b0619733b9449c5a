"""The ``rpyc`` backend: MetaTrader5 under Wine/Windows, reached over rpyc.

The server (:mod:`domain.market.bridge_server`) exposes ONE method,
``call(name, args, kwargs)``, for an allow-list of module functions with
typed, validated arguments; it never evaluates code (unlike ``mt5linux``,
which builds code strings — a symbol name there is remote code execution).
Both ends check every argument against :data:`SIGNATURES` (symbol names
against a strict pattern), so a malformed name is refused before it leaves
this process. Values cross the wire as tagged plain tuples (:func:`encode`),
never as remote references or pickles.

Before rpyc speaks at all, the two ends run a mutual HMAC-SHA256
challenge-response over a shared secret (``MT5_BRIDGE_SECRET``,
:func:`client_handshake` / :class:`HandshakeAuthenticator`): the server
proves nothing is served before the client answered its nonce, the client
that the server knows the secret too before it sends a password. A client
never talks to a bridge off loopback without a secret, nor to an open
bridge when it holds one.

:class:`RemoteModule` looks like the MetaTrader5 module to
:class:`~domain.market.mt5client.ModuleClient`; it enforces a per-call
timeout and reconnects with exponential backoff.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import ipaddress
import logging
import re
import secrets
import socket
import threading
import time
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import numpy as np

from domain.market.errors import (
    AccountMismatch,
    BackendNotInstalled,
    BridgeAuthError,
    BridgeProtocolError,
    GatewayError,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidRequest,
    InvalidSymbolName,
)
from domain.market.mt5client import ModuleClient, ThreadedModuleGateway
from domain.market.symbols import is_valid_symbol_name

try:
    import rpyc
    from rpyc.core.stream import SocketStream
    from rpyc.utils.authenticators import AuthenticationError
    from rpyc.utils.factory import connect_stream
except ImportError:  # the gateway reports it when used
    rpyc = None

log = logging.getLogger(__name__)

# -- authentication ------------------------------------------------------------------------------

MAGIC = b"HTMT5B1"  # protocol name and version, the first bytes the server sends
NONCE_BYTES = 32
HANDSHAKE_TIMEOUT = 5.0


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: the only hosts an unauthenticated bridge may use."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mac(secret: bytes, label: bytes, first: bytes, second: bytes) -> bytes:
    return hmac.new(secret, MAGIC + label + first + second, hashlib.sha256).digest()


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("bridge closed the connection during the handshake")
        data += chunk
    return data


def client_handshake(sock: socket.socket, secret: bytes | None) -> None:
    """The client's half of the handshake on a fresh socket; BridgeAuthError when refused.

    Server: MAGIC, b"1" (a secret is required) or b"0", its nonce. Client: HMAC(secret,
    "client" + server nonce + client nonce), its nonce. Server: b"OK" + HMAC(secret, "server" +
    client nonce + server nonce), or b"NO" and it hangs up.
    """
    greeting = _recv_exact(sock, len(MAGIC) + 1 + NONCE_BYTES)
    if greeting[: len(MAGIC)] != MAGIC:
        raise BridgeProtocolError("not an MT5 bridge (or another version of it)")
    required, server_nonce = greeting[len(MAGIC) : len(MAGIC) + 1] == b"1", greeting[len(MAGIC) + 1 :]
    if required and secret is None:
        raise BridgeAuthError("the bridge requires MT5_BRIDGE_SECRET and none is set here")
    if not required and secret is not None:
        raise BridgeAuthError("the bridge does not authenticate itself; refusing it (MT5_BRIDGE_SECRET is set)")
    client_nonce = secrets.token_bytes(NONCE_BYTES)
    answer = _mac(secret, b"client", server_nonce, client_nonce) if secret is not None else bytes(NONCE_BYTES)
    sock.sendall(answer + client_nonce)
    try:
        reply = _recv_exact(sock, 2 + NONCE_BYTES)
    except EOFError:
        raise BridgeAuthError("the bridge refused the secret") from None
    if reply[:2] != b"OK":
        raise BridgeAuthError("the bridge refused the secret")
    if secret is not None and not hmac.compare_digest(reply[2:], _mac(secret, b"server", client_nonce, server_nonce)):
        raise BridgeAuthError("the bridge could not prove it knows the secret")


class HandshakeAuthenticator:
    """rpyc server authenticator: the server's half of :func:`client_handshake`.

    Runs on the raw socket before rpyc's protocol starts, so no exposed call is reachable
    by a client that has not answered the nonce. ``secret`` None: an open bridge (loopback only).
    """

    def __init__(self, secret: bytes | None, *, timeout: float = HANDSHAKE_TIMEOUT) -> None:
        self._secret = secret
        self._timeout = timeout

    def __call__(self, sock: socket.socket) -> tuple[socket.socket, None]:
        sock.settimeout(self._timeout)
        nonce = secrets.token_bytes(NONCE_BYTES)
        try:
            sock.sendall(MAGIC + (b"1" if self._secret is not None else b"0") + nonce)
            reply = _recv_exact(sock, 2 * NONCE_BYTES)
        except (OSError, EOFError) as exc:
            raise AuthenticationError(f"handshake broken: {exc}") from None
        answer, client_nonce = reply[:NONCE_BYTES], reply[NONCE_BYTES:]
        proof = bytes(NONCE_BYTES)
        if self._secret is not None:
            if not hmac.compare_digest(answer, _mac(self._secret, b"client", nonce, client_nonce)):
                with contextlib.suppress(OSError):
                    sock.sendall(b"NO" + bytes(NONCE_BYTES))
                log.warning("bridge: refused a client that does not know the secret")
                raise AuthenticationError("wrong secret")
            proof = _mac(self._secret, b"server", client_nonce, nonce)
        try:
            sock.sendall(b"OK" + proof)
        except OSError as exc:
            raise AuthenticationError(f"handshake broken: {exc}") from None
        sock.settimeout(None)
        return sock, None

# -- argument validation ----------------------------------------------------------------

Validator = Callable[[Any], bool]


def _int(v: Any) -> bool:
    return type(v) is int


def _num(v: Any) -> bool:
    return type(v) in (int, float)


def _bool(v: Any) -> bool:
    return type(v) is bool


def _text(v: Any) -> bool:
    return type(v) is str and len(v) <= 256


def _group(v: Any) -> bool:
    return type(v) is str and re.fullmatch(r"[A-Za-z0-9._#+\-*!,]{1,128}", v) is not None


def _symbol(v: Any) -> bool:
    return is_valid_symbol_name(v) and type(v) is str


_REQUEST_FIELDS: dict[str, Validator] = {
    "action": _int,
    "magic": _int,
    "order": _int,
    "symbol": _symbol,
    "volume": _num,
    "price": _num,
    "stoplimit": _num,
    "sl": _num,
    "tp": _num,
    "deviation": _int,
    "type": _int,
    "type_filling": _int,
    "type_time": _int,
    "expiration": _int,
    "comment": lambda v: type(v) is str and len(v) <= 31,
    "position": _int,
    "position_by": _int,
}


def _request(v: Any) -> bool:
    return (
        type(v) is dict
        and 0 < len(v) <= len(_REQUEST_FIELDS)
        and all(type(k) is str and k in _REQUEST_FIELDS and _REQUEST_FIELDS[k](x) for k, x in v.items())
    )


# name -> (positional validators, how many are required, keyword validators)
SIGNATURES: dict[str, tuple[tuple[Validator, ...], int, dict[str, Validator]]] = {
    "initialize": (
        (_text,),
        0,
        {"login": _int, "password": _text, "server": _text, "timeout": _int, "portable": _bool},
    ),
    "login": ((_int,), 1, {"password": _text, "server": _text, "timeout": _int}),
    "shutdown": ((), 0, {}),
    "version": ((), 0, {}),
    "last_error": ((), 0, {}),
    "terminal_info": ((), 0, {}),
    "account_info": ((), 0, {}),
    "symbols_total": ((), 0, {}),
    "symbols_get": ((), 0, {"group": _group}),
    "symbol_info": ((_symbol,), 1, {}),
    "symbol_info_tick": ((_symbol,), 1, {}),
    "symbol_select": ((_symbol, _bool), 1, {}),
    "copy_rates_from": ((_symbol, _int, _num, _int), 4, {}),
    "copy_rates_from_pos": ((_symbol, _int, _int, _int), 4, {}),
    "copy_rates_range": ((_symbol, _int, _num, _num), 4, {}),
    "order_calc_margin": ((_int, _symbol, _num, _num), 4, {}),
    "order_calc_profit": ((_int, _symbol, _num, _num, _num), 5, {}),
    "order_check": ((_request,), 1, {}),
    "order_send": ((_request,), 1, {}),
    "positions_total": ((), 0, {}),
    "positions_get": ((), 0, {"symbol": _symbol, "group": _group, "ticket": _int}),
    "history_deals_total": ((_num, _num), 2, {}),
    "history_deals_get": ((_num, _num), 0, {"group": _group, "ticket": _int, "position": _int}),
}


# Calls that act on or read the logged-in account: a bridge given an expected account checks it first.
ACCOUNT_CALLS = frozenset({
    "account_info", "order_calc_margin", "order_calc_profit", "order_check", "order_send", "positions_total",
    "positions_get", "history_deals_total", "history_deals_get",
})  # fmt: skip
MISMATCH = "M"  # the bridge's answer when its terminal is on another account: ("M", login, server)


def check_expect(value: Any) -> tuple[int, str]:
    if type(value) is not tuple or len(value) != 2 or not _int(value[0]) or not _text(value[1]):
        raise InvalidRequest("expected account must be (login, server)")
    return value[0], value[1]


def check_call(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Raise unless ``name(*args, **kwargs)`` is an allowed, well-typed call."""
    if type(name) is not str or name not in SIGNATURES:
        raise InvalidRequest(f"function {str(name)[:40]!r} is not exposed by the bridge")
    positional, required, keywords = SIGNATURES[name]
    if not required <= len(args) <= len(positional):
        raise InvalidRequest(f"{name}: wrong number of arguments")
    for i, (check, value) in enumerate(zip(positional, args, strict=False)):
        if not check(value):
            if check is _symbol:
                raise InvalidSymbolName(str(value)[:64])
            if check is _request and type(value) is dict and not _symbol(value.get("symbol")):
                raise InvalidSymbolName(str(value.get("symbol"))[:64])
            raise InvalidRequest(f"{name}: argument {i} rejected")
    for key, value in kwargs.items():
        check = keywords.get(key)
        if check is None:
            raise InvalidRequest(f"{name}: unexpected keyword {key[:40]!r}")
        if value is None:
            continue
        if not check(value):
            if check is _symbol:
                raise InvalidSymbolName(str(value)[:64])
            raise InvalidRequest(f"{name}: keyword {key!r} rejected")


# -- wire codec ------------------------------------------------------------------------------

_PRIMITIVES = (type(None), bool, int, float, str, bytes)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def encode(value: Any) -> Any:
    """Plain brine-able data: primitives, or tagged tuples for containers."""
    if type(value) in _PRIMITIVES:
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError("object arrays do not cross the bridge")
        arr = np.ascontiguousarray(value)
        descr = tuple((str(n), str(f)) for n, f in arr.dtype.descr) if arr.dtype.names else (("", arr.dtype.str),)
        return ("A", descr, tuple(int(s) for s in arr.shape), arr.tobytes())
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return ("R", type(value).__name__, tuple(value._fields), tuple(encode(v) for v in value))
    if isinstance(value, (tuple, list)):
        return ("T", tuple(encode(v) for v in value))
    if isinstance(value, dict):
        return ("D", tuple((str(k), encode(v)) for k, v in value.items()))
    raise TypeError(f"{type(value).__name__} does not cross the bridge")


@functools.lru_cache(maxsize=64)
def _record_type(name: str, fields: tuple[str, ...]) -> type:
    return namedtuple(name, fields)  # type: ignore[misc]


def decode(value: Any, depth: int = 0) -> Any:
    """Inverse of :func:`encode`; rejects anything that is not plain data."""
    if type(value) in _PRIMITIVES:
        return value
    if type(value) is not tuple or not value or depth > 8:
        raise BridgeProtocolError(f"unexpected {type(value).__name__} on the bridge")
    tag = value[0]
    try:
        if tag == "T":
            return tuple(decode(v, depth + 1) for v in _tuple(value[1]))
        if tag == "D":
            return {_str(k): decode(v, depth + 1) for k, v in _tuple(value[1])}
        if tag == "R":
            name, fields, values = _str(value[1]), _tuple(value[2]), _tuple(value[3])
            if not _IDENT.match(name) or not all(type(f) is str and _IDENT.match(f) for f in fields):
                raise BridgeProtocolError("bad record layout")
            return _record_type(name, fields)(*(decode(v, depth + 1) for v in values))
        if tag == "A":
            descr, shape, data = _tuple(value[1]), _tuple(value[2]), value[3]
            if type(data) is not bytes or not all(type(s) is int for s in shape):
                raise BridgeProtocolError("bad array")
            pairs = [(_str(n), _str(f)) for n, f in descr]
            dtype = np.dtype(pairs) if pairs and pairs[0][0] else np.dtype(pairs[0][1])
            if dtype.hasobject:
                raise BridgeProtocolError("object arrays are refused")
            return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    except (TypeError, ValueError) as exc:
        raise BridgeProtocolError(f"malformed bridge value: {exc}") from None
    raise BridgeProtocolError(f"unknown tag {str(tag)[:8]!r}")


def _tuple(v: Any) -> tuple[Any, ...]:
    if type(v) is not tuple:
        raise BridgeProtocolError("expected a tuple")
    return v


def _str(v: Any) -> str:
    if type(v) is not str:
        raise BridgeProtocolError("expected a string")
    return v


# -- client ------------------------------------------------------------------------------------

CLIENT_CONFIG = {
    "allow_pickle": False,
    "allow_public_attrs": False,
    "allow_all_attrs": False,
    "import_custom_exceptions": False,
}


def open_connection(host: str, port: int, *, secret: bytes | None, timeout: float) -> Any:
    """An rpyc connection to a bridge, after the handshake (BridgeAuthError when refused)."""
    if rpyc is None:
        raise BackendNotInstalled("rpyc is not installed (pip install rpyc)")
    sock = SocketStream._connect(host, port, timeout=timeout, nodelay=True, keepalive=True, attempts=1)
    try:
        client_handshake(sock, secret)
        sock.settimeout(None)
        return connect_stream(
            SocketStream(sock), service=rpyc.VoidService, config={**CLIENT_CONFIG, "sync_request_timeout": timeout}
        )
    except BaseException:
        with contextlib.suppress(OSError):
            sock.close()
        raise


class RemoteModule:
    """The MetaTrader5 module of a bridge server, as a local module-like object.

    Not thread-safe by design: the gateway drives it from its one thread.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 18812,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.25,
        max_backoff: float = 4.0,
        sleep: Callable[[float], None] = time.sleep,
        secret: str | bytes | None = None,
    ) -> None:
        self.host, self.port = host, int(port)
        self._secret = secret.encode() if isinstance(secret, str) else secret
        # (login, server) the bridge must find its terminal on before each account call (atomically,
        # under its module lock): no other process can switch the account between check and send
        self.expect: tuple[int, str] | None = None
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff, self.max_backoff = backoff, max_backoff
        self._sleep = sleep
        self._conn: Any = None
        self._remote_call: Any = None
        self._lock = threading.Lock()

    def _connection(self) -> Any:
        if self._conn is not None and not self._conn.closed:
            return self._remote_call
        if rpyc is None:
            raise BackendNotInstalled("rpyc is not installed (pip install rpyc)")
        if self._secret is None and not is_loopback(self.host):
            # a password must never cross an unauthenticated channel
            raise BridgeAuthError(f"MT5 bridge {self.host}:{self.port} is not on loopback: set MT5_BRIDGE_SECRET")
        delay, last = self.backoff, None
        for attempt in range(self.retries):
            try:
                conn = open_connection(self.host, self.port, secret=self._secret, timeout=self.timeout)
                self._remote_call = conn.root.call
                self._conn = conn
                return self._remote_call
            except (OSError, EOFError) as exc:
                last = exc
            if attempt + 1 < self.retries:
                self._sleep(delay)
                delay = min(delay * 2, self.max_backoff)
        raise GatewayUnavailable(f"MT5 bridge {self.host}:{self.port} unreachable: {last}")

    def close(self) -> None:
        conn, self._conn, self._remote_call = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(OSError, EOFError):
                conn.close()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in SIGNATURES:
            raise AttributeError(name)
        return functools.partial(self.call, name)

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        check_call(name, args, kwargs)  # before anything leaves this process
        with self._lock:
            remote = self._connection()
            try:
                if self.expect is not None and name in ACCOUNT_CALLS:
                    raw = remote(name, encode(args), encode(kwargs), encode(self.expect))
                else:
                    raw = remote(name, encode(args), encode(kwargs))
            except TimeoutError:
                self.close()  # a late answer must not pair with the next call
                raise GatewayTimeout(f"bridge call {name} took longer than {self.timeout}s") from None
            except (EOFError, OSError) as exc:
                self.close()
                raise GatewayUnavailable(f"bridge connection lost during {name}: {exc}") from None
            except (ValueError, TypeError) as exc:
                raise InvalidRequest(f"bridge refused {name}: {str(exc).splitlines()[0][:200]}") from None
            except Exception as exc:  # a remote exception, re-raised by rpyc
                raise GatewayError(f"bridge call {name} failed: {type(exc).__name__}") from None
        if type(raw) is tuple and len(raw) == 3 and raw[0] == MISMATCH and self.expect is not None:
            actual = (raw[1], raw[2]) if type(raw[1]) is int and type(raw[2]) is str else None
            raise AccountMismatch(self.expect, actual, relogged=False)
        return decode(raw)


class BridgeGateway(ThreadedModuleGateway):
    """TradingGateway over a MetaTrader5 bridge server (``MT5_BACKEND=rpyc``).

    Like the module it serves, a bridge server has ONE terminal connection
    and one logged-in account at a time: live accounts each get their own
    bridge from the terminal pool (:mod:`domain.trading.pool`), and with
    ``verify`` every account call checks the terminal is still on ``login``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 18812,
        *,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.25,
        max_backoff: float = 4.0,
        init_timeout_ms: int = 60_000,
        secret: str | bytes | None = None,
        verify: bool = False,
    ) -> None:
        self.remote = RemoteModule(
            host, port, timeout=timeout, retries=retries, backoff=backoff, max_backoff=max_backoff, secret=secret
        )
        client = ModuleClient(
            self.remote, login=login, password=password, server=server, timeout_ms=init_timeout_ms, verify=verify
        )
        self.remote.expect = client.expected
        # a call may reconnect first: allow the backoff schedule on top of the call timeout
        budget = sum(min(backoff * 2**i, max_backoff) + 3.0 for i in range(retries))
        super().__init__(client, timeout=timeout * 3 + budget, thread_name="mt5-bridge")

    def _close_sync(self) -> None:
        try:
            self._client.close()
        finally:
            self.remote.close()
