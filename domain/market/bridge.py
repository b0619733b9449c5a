"""The ``rpyc`` backend: MetaTrader5 under Wine/Windows, reached over rpyc.

The server (:mod:`domain.market.bridge_server`) exposes ONE method,
``call(name, args, kwargs)``, for an allow-list of module functions with
typed, validated arguments; it never evaluates code (unlike ``mt5linux``,
which builds code strings — a symbol name there is remote code execution).
Both ends check every argument against :data:`SIGNATURES` (symbol names
against a strict pattern), so a malformed name is refused before it leaves
this process. Values cross the wire as tagged plain tuples (:func:`encode`),
never as remote references or pickles.

:class:`RemoteModule` looks like the MetaTrader5 module to
:class:`~domain.market.mt5client.ModuleClient`; it enforces a per-call
timeout and reconnects with exponential backoff.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
import time
from collections import namedtuple
from collections.abc import Callable
from typing import Any

import numpy as np

from domain.market.errors import (
    BackendNotInstalled,
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
except ImportError:  # the gateway reports it when used
    rpyc = None

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
    ) -> None:
        self.host, self.port = host, int(port)
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
        delay, last = self.backoff, None
        for attempt in range(self.retries):
            try:
                conn = rpyc.connect(
                    self.host,
                    self.port,
                    service=rpyc.VoidService,
                    config={
                        "sync_request_timeout": self.timeout,
                        "allow_pickle": False,
                        "allow_public_attrs": False,
                        "allow_all_attrs": False,
                        "import_custom_exceptions": False,
                    },
                    keepalive=True,
                )
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
        return decode(raw)


class BridgeGateway(ThreadedModuleGateway):
    """TradingGateway over a MetaTrader5 bridge server (``MT5_BACKEND=rpyc``).

    Like the module it serves, a bridge server has ONE terminal connection
    and one logged-in account at a time: gateways with different logins on
    the same server switch the account under each other. Per-user demo
    accounts belong on the ``sim`` backend.
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
    ) -> None:
        self.remote = RemoteModule(
            host, port, timeout=timeout, retries=retries, backoff=backoff, max_backoff=max_backoff
        )
        client = ModuleClient(self.remote, login=login, password=password, server=server, timeout_ms=init_timeout_ms)
        # a call may reconnect first: allow the backoff schedule on top of the call timeout
        budget = sum(min(backoff * 2**i, max_backoff) + 3.0 for i in range(retries))
        super().__init__(client, timeout=timeout * 3 + budget, thread_name="mt5-bridge")

    def _close_sync(self) -> None:
        try:
            self._client.close()
        finally:
            self.remote.close()
