"""The terminal pool: every live account gets its own MT5 terminal, never shared.

The MetaTrader5 module (and so one bridge server) holds ONE logged-in account per
process, so a terminal serves exactly one live account at a time. The pool is a list of
endpoints, each one terminal:

- ``rpyc``: ``MT5_RPYC_POOL=host:port,…`` (or ``MT5_RPYC_HOST/PORT``, a pool of one),
  each a ``bridge_server`` in front of its own terminal (MT5 under Wine, a container each);
- ``native`` (Windows) with ``MT5_TERMINAL_PATHS``: one child ``bridge_server`` process per
  terminal installation (portable mode) on a loopback port, spoken to over the same
  bridge protocol (:class:`NativeTerminals`), so this process never imports MetaTrader5
  for an account; without paths, the local module is a pool of one.

Which endpoint serves which (login, server) is a lease in the database
(:class:`~domain.db.terminals.SqlTerminalStore`), so every replica and worker connects an
account to the same terminal; unlinking frees it. A gateway from the pool checks before
every account call that its terminal is still on the leased account
(:class:`~domain.market.mt5client.ModuleClient` ``verify``); :class:`GuardedGateway`
audits a mismatch and takes a terminal that could not be logged back in out of the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from domain.audit import AuditEntry, Surface
from domain.clock import utcnow
from dataclasses import replace

from domain.admin import PoolFigures
from domain.db.terminals import Lease, SqlTerminalStore
from domain.market.errors import AccountMismatch
from domain.market.gateway import OrderRequest, TradingGateway
from domain.market.models import Account, Bar, Deal, OrderCheck, OrderResult, Position, SymbolSpec, Tick, Timeframe
from domain.trading.models import NoFreeTerminal

log = logging.getLogger(__name__)

T = TypeVar("T")
LOCAL = "native:local"  # the in-process MetaTrader5 module, when no installations are listed


@dataclass(frozen=True, slots=True)
class Endpoint:
    key: str  # what a lease names: "host:port", "native:<installation>" or LOCAL
    host: str
    port: int


def parse_endpoints(raw: str) -> list[Endpoint]:
    """``host:port,host:port,…`` (``[v6]:port`` too); ValueError on anything else."""
    out: dict[str, Endpoint] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        host = host.strip().removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"MT5_RPYC_POOL: {part[:80]!r} is not host:port")
        out.setdefault(f"{host}:{int(port)}", Endpoint(f"{host}:{int(port)}", host, int(port)))
    if not out:
        raise ValueError("MT5_RPYC_POOL lists no endpoint")
    return list(out.values())


def parse_paths(raw: str) -> list[str]:
    """``MT5_TERMINAL_PATHS``: installations separated by ``;`` (or new lines)."""
    return [p.strip() for p in raw.replace("\n", ";").split(";") if p.strip()]


def native_secret(secret_key: bytes) -> bytes:
    """The secret between this host's processes and their native children (from SECRET_KEY)."""
    return hmac.new(secret_key, b"hybrid-trader/mt5-native-bridge", hashlib.sha256).hexdigest().encode()


async def _listening(port: int) -> bool:
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class NativeTerminals:
    """``native`` on Windows: one child ``bridge_server`` per terminal installation.

    Installation ``i`` is served on ``127.0.0.1:(base_port + i)``: every process on the host
    finds the same child (the first to need it starts it; a second one finds it listening).
    The child owns the terminal (``--terminal-path``, portable mode) and the account logged in
    to it; the secret reaches it through its environment. ``child_args`` replaces the
    module arguments (tests run ``--sim --account …`` children over the same code path).
    """

    def __init__(
        self, paths: Sequence[str], *, base_port: int, secret: bytes,
        child_args: Callable[[int, str], list[str]] | None = None, python: str = sys.executable,
        start_timeout: float = 60.0,
    ) -> None:  # fmt: skip
        self._paths = list(paths)
        self._base = base_port
        self._secret = secret
        self._child_args = child_args
        self._python = python
        self._start_timeout = start_timeout
        self._children: dict[str, asyncio.subprocess.Process] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def endpoints(self) -> list[Endpoint]:
        return [Endpoint(f"native:{p}", "127.0.0.1", self._base + 1 + i) for i, p in enumerate(self._paths)]

    def command(self, endpoint: Endpoint) -> list[str]:
        index = self._paths.index(endpoint.key.removeprefix("native:"))
        path = self._paths[index]
        module_args = self._child_args(index, path) if self._child_args else ["--terminal-path", path]
        return [self._python, "-m", "domain.market.bridge_server", "--host", "127.0.0.1", "--port",
                str(endpoint.port), *module_args]  # fmt: skip

    async def ensure(self, endpoint: Endpoint) -> None:
        """Start the child serving ``endpoint`` unless one listens already."""
        lock = self._locks.setdefault(endpoint.key, asyncio.Lock())
        async with lock:
            if await _listening(endpoint.port):
                return
            env = {**os.environ, "MT5_BRIDGE_SECRET": self._secret.decode()}
            proc = await asyncio.create_subprocess_exec(
                *self.command(endpoint), env=env, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL
            )
            assert proc.stdout is not None
            try:
                line = await asyncio.wait_for(proc.stdout.readline(), self._start_timeout)
            except TimeoutError:
                line = b""
            if not line.startswith(b"LISTENING"):
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                if await _listening(endpoint.port):  # another process's child won the port
                    return
                raise OSError(f"the terminal child for {endpoint.key} did not start")
            self._children[endpoint.key] = proc
            log.info("started the terminal child for %s on port %d (pid %d)", endpoint.key, endpoint.port, proc.pid)

    async def close(self) -> None:
        for proc in self._children.values():
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        for proc in self._children.values():
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        self._children.clear()


class TerminalPool:
    """Endpoints from the settings, leases in the database, gateways that check their account."""

    def __init__(
        self, endpoints: Sequence[Endpoint], store: SqlTerminalStore, *, secret: bytes | None = None,
        timeout: float = 10.0, native: NativeTerminals | None = None, local_module: Any = None,
    ) -> None:  # fmt: skip
        self.endpoints = list(endpoints)
        self._by_key = {e.key: e for e in self.endpoints}
        self.store = store
        self._secret = secret
        self._timeout = timeout
        self.native = native
        self._local_module = local_module
        self.secret = secret
        self.refusals = 0  # links refused because every terminal was taken (since start)

    @property
    def keys(self) -> list[str]:
        return list(self._by_key)

    async def start(self) -> None:
        await self.store.sync(self.keys, utcnow())

    async def lease(self, user_id: int, login: int, server: str) -> tuple[Endpoint, Lease]:
        try:
            lease = await self.store.lease(self.keys, user_id, login, server, utcnow())
        except NoFreeTerminal:
            self.refusals += 1
            log.error(
                "terminal pool exhausted: all %d terminals are leased or unhealthy; a live account could not "
                "get one (add endpoints to MT5_RPYC_POOL / MT5_TERMINAL_PATHS)", len(self.endpoints),
            )  # fmt: skip
            raise
        return self._by_key[lease.endpoint], lease

    async def release(self, login: int, server: str, user_id: int | None = None) -> str | None:
        return await self.store.release(login, server, user_id)

    async def gateway(self, endpoint: Endpoint, login: int, password: str, server: str) -> TradingGateway:
        """A gateway (not connected yet) logging ``endpoint``'s terminal in to ``login``, checking it on
        every account call; closing it leaves the terminal logged in (other processes share it)."""
        if endpoint.key == LOCAL:
            from domain.market.native import NativeGateway

            gw: Any = NativeGateway(module=self._local_module, login=login, password=password, server=server,
                                    timeout=self._timeout, verify=True)  # fmt: skip
        else:
            from domain.market.bridge import BridgeGateway

            if self.native is not None:
                await self.native.ensure(endpoint)
            gw = BridgeGateway(endpoint.host, endpoint.port, login=login, password=password, server=server,
                               timeout=self._timeout, secret=self._secret, verify=True)  # fmt: skip
        gw._client.shutdown_on_close = False
        return gw  # type: ignore[no-any-return]

    async def figures(self) -> PoolFigures:
        return replace(await self.store.figures(self.keys), refused=self.refusals)

    async def on_mismatch(self, endpoint: Endpoint, user_id: int | None, exc: AccountMismatch) -> None:
        """Audit a terminal found on the wrong account; out of the pool unless it was logged back in."""
        details = {"endpoint": endpoint.key, "expected": list(exc.expected),
                   "actual": list(exc.actual) if exc.actual else None, "relogged": exc.relogged}  # fmt: skip
        entry = AuditEntry("trading.terminal_mismatch", None, user_id, Surface.SYSTEM, details)
        log.error("terminal %s was on account %s instead of %s; %s", endpoint.key, exc.actual, exc.expected,
                  "logged back in" if exc.relogged else "taken out of the pool")  # fmt: skip
        if exc.relogged:
            await self.store.audit(entry)
        else:
            await self.store.mark_unhealthy(endpoint.key, entry, utcnow())

    async def close(self) -> None:
        if self.native is not None:
            await self.native.close()


def build_pool(
    backend: str, store: SqlTerminalStore, *, host: str, port: int, pool: str | None, paths: str | None,
    secret: bytes | None, secret_key: bytes, timeout: float = 10.0,
) -> TerminalPool | None:
    """The pool ``MT5_BACKEND`` and the MT5_* settings describe (None for ``sim``)."""
    if backend == "rpyc":
        endpoints = parse_endpoints(pool) if pool else [Endpoint(f"{host}:{port}", host, port)]
        return TerminalPool(endpoints, store, secret=secret, timeout=timeout)
    if backend == "native":
        installations = parse_paths(paths or "")
        if not installations:  # the local module: one account
            return TerminalPool([Endpoint(LOCAL, "", 0)], store, timeout=timeout)
        key = secret or native_secret(secret_key)
        native = NativeTerminals(installations, base_port=port, secret=key)
        return TerminalPool(native.endpoints(), store, secret=key, timeout=timeout, native=native)
    return None


class GuardedGateway:
    """A pooled live account's gateway: an AccountMismatch goes to ``on_mismatch`` before it is raised."""

    def __init__(
        self, inner: TradingGateway, endpoint: Endpoint, lease: Lease,
        on_mismatch: Callable[[GuardedGateway, AccountMismatch], Awaitable[None]],
    ) -> None:  # fmt: skip
        self.inner = inner
        self.endpoint = endpoint
        self.lease = lease
        self._on_mismatch = on_mismatch

    async def _guard(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except AccountMismatch as exc:
            await self._on_mismatch(self, exc)
            raise

    async def connect(self) -> None:
        await self._guard(self.inner.connect())

    async def relogin(self) -> bool:
        """Log the terminal back in to the leased account; True when it is on it again."""
        inner: Any = self.inner
        try:
            return bool(await inner._run(inner._client.relogin))
        except Exception:  # the terminal is unreachable too: out of the pool
            log.warning("re-login of %s failed", self.endpoint.key, exc_info=True)
            return False

    async def close(self) -> None:
        await self.inner.close()

    async def symbols(self) -> list[str]:
        return await self._guard(self.inner.symbols())

    async def symbol_spec(self, name: str) -> SymbolSpec:
        return await self._guard(self.inner.symbol_spec(name))

    async def tick(self, symbol: str) -> Tick:
        return await self._guard(self.inner.tick(symbol))

    async def bars(self, symbol: str, tf: Timeframe, count: int) -> list[Bar]:
        return await self._guard(self.inner.bars(symbol, tf, count))

    async def bars_range(self, symbol: str, tf: Timeframe, start: datetime, end: datetime) -> list[Bar]:
        return await self._guard(self.inner.bars_range(symbol, tf, start, end))

    async def account(self) -> Account:
        return await self._guard(self.inner.account())

    async def positions(self, symbol: str | None = None) -> list[Position]:
        return await self._guard(self.inner.positions(symbol))

    async def history_deals(self, start: datetime, end: datetime, symbol: str | None = None) -> list[Deal]:
        return await self._guard(self.inner.history_deals(start, end, symbol))

    async def order_check(self, request: OrderRequest) -> OrderCheck:
        return await self._guard(self.inner.order_check(request))

    async def order_send(self, request: OrderRequest) -> OrderResult:
        return await self._guard(self.inner.order_send(request))

    async def ping(self) -> float:
        return await self._guard(self.inner.ping())
