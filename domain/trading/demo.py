"""Demo accounts of the simulated terminal, shared by every process through the database.

Each process runs its own :class:`~domain.market.sim.SimTerminal` (prices are
deterministic, so every process sees the same market) but an account's state
lives in ``sim_accounts``/``sim_deals``. Every call that touches an account
(:class:`SharedSimGateway`) holds that account's row for its length: it loads
the stored state when another process changed it since (version check, and
only the deals it lacks), runs the terminal call, and stores what changed in
the same transaction. A call whose transaction fails leaves nothing behind:
the process forgets its copy and reloads. Logins and tickets come from
sequences reserved in blocks, so processes never hand out the same number.
A process keeps copies of the ``keep`` accounts it used last; older ones are
dropped from its terminal and read again when next used.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from domain.market.sim import SimGateway, SimTerminal
from domain.trading import simstate

T = TypeVar("T")

FIRST_LOGIN = 5_000_001
FIRST_TICKET = 100_000_001
# A call consumes two tickets per fill; a catch-up may close every open position at once.
TICKETS_PER_CALL = 256
KEEP = 10_000  # accounts a process keeps a copy of


class LockedAccount(Protocol):
    row: Any  # .version, .state, .deals; None when not stored yet

    async def deals(self, start: int = 0) -> list[list[Any]]: ...
    async def save(self, state: dict[str, Any], deals: list[Any], now: datetime) -> int: ...


class DemoStore(Protocol):
    def locked(self, login: int) -> Any: ...  # async context manager of LockedAccount
    async def reserve(self, name: str, count: int, start: int) -> int: ...


class IdBlocks:
    """An id iterator over blocks reserved from a database sequence (thread-safe ``next``)."""

    def __init__(self, store: DemoStore, name: str, start: int, block: int) -> None:
        self._store, self._name, self._start, self._block = store, name, start, block
        self._next = self._end = 0
        self._lock = threading.Lock()

    def left(self) -> int:
        return self._end - self._next

    async def ensure(self, count: int) -> None:
        """Reserve a new block unless ``count`` ids are left."""
        if self.left() >= count:
            return
        first = await self._store.reserve(self._name, max(self._block, count), self._start)
        with self._lock:
            self._next, self._end = first, first + max(self._block, count)

    def __iter__(self) -> IdBlocks:
        return self

    def __next__(self) -> int:
        with self._lock:
            if self._next >= self._end:
                raise RuntimeError(f"no {self._name} ids reserved")  # callers ensure() before each call
            self._next += 1
            return self._next - 1


class DemoAccounts:
    def __init__(self, terminal: SimTerminal, store: DemoStore, *, keep: int = KEEP) -> None:
        self.terminal = terminal
        self._store = store
        self._keep = keep
        self._recent: OrderedDict[int, None] = OrderedDict()  # logins with a copy here, least recent first
        self.on_evict: list[Callable[[int], None]] = []  # told each login whose copy was dropped
        self._logins = IdBlocks(store, "login", FIRST_LOGIN, 16)
        self._tickets = IdBlocks(store, "ticket", FIRST_TICKET, 4 * TICKETS_PER_CALL)
        self._held: dict[int, tuple[int, int]] = {}  # login -> (stored version, stored deals) of our copy
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    async def start(self) -> None:
        """Reserve the first ids and let the terminal draw from them."""
        await self._logins.ensure(1)
        await self._tickets.ensure(TICKETS_PER_CALL)
        self.terminal._logins = self._logins
        self.terminal._orders = self.terminal._deals = self._tickets

    async def open(self, balance: float, currency: str = "USD", leverage: int = 100) -> int:
        """Open and store a new demo account; returns its login."""
        await self._logins.ensure(1)
        login = next(self._logins)
        while self.terminal.has_account(login):  # a local-only account took it (tests, the console)
            await self._logins.ensure(1)
            login = next(self._logins)
        await self.call(login, lambda: self.terminal.open_demo_account(balance, currency, leverage, login=login))
        return login

    async def call(self, login: int, fn: Callable[[], T]) -> T:
        """Run the terminal call ``fn`` on account ``login`` with its stored state, storing what changed."""
        lock = self._locks.get(login)
        if lock is None:
            lock = self._locks[login] = asyncio.Lock()
        async with lock:
            await self._tickets.ensure(TICKETS_PER_CALL)
            try:
                async with self._store.locked(login) as held:
                    await self._load(login, held)
                    result, after = await asyncio.to_thread(self._run, login, fn)
                    if after is not None:
                        await self._save(login, held, *after)
            except BaseException:
                self._held.pop(login, None)  # our copy may be ahead of what is stored: reload next time
                raise
            finally:
                self._recent[login] = None
                self._recent.move_to_end(login)
        self._evict()
        return result

    def _evict(self) -> None:
        while len(self._recent) > self._keep:
            login = next(iter(self._recent))
            lock = self._locks.get(login)
            if lock is not None and lock.locked():  # in use: its turn comes after the call
                return
            del self._recent[login]
            with self.terminal._lock:
                self.terminal._accounts.pop(login, None)
            self._held.pop(login, None)
            for listener in self.on_evict:
                listener(login)

    async def _load(self, login: int, held: LockedAccount) -> None:
        row = held.row
        mine = self._held.get(login)
        if row is None or (mine is not None and mine[0] == row.version and self.terminal.has_account(login)):
            return
        keep: list[Any] = []
        if mine is not None and self.terminal.has_account(login):  # an older copy: read only the newer deals
            keep = self.terminal._accounts[login].deals[: mine[1]]
        deals = keep + [tuple(d) for d in await held.deals(len(keep))]
        self.terminal.install_account(simstate.account(login, row.state, deals))
        self._held[login] = (row.version, row.deals)

    def _run(self, login: int, fn: Callable[[], T]) -> tuple[T, tuple[dict[str, Any], list[Any]] | None]:
        """``fn``, then the account's state and new deals (in a thread)."""
        result = fn()  # not under the terminal's lock: a gateway takes its own lock first
        with self.terminal._lock:
            if not self.terminal.has_account(login):
                return result, None
            acc = self.terminal._synced(login)
            return result, (simstate.state(acc), acc.deals[self._held.get(login, (0, 0))[1] :])

    async def _save(self, login: int, held: LockedAccount, state: dict[str, Any], deals: list[Any]) -> None:
        row = held.row
        if row is not None and not deals and simstate.same_trading_state(row.state, state):
            return  # nothing happened; another process catches up from the stored instant alike
        stored = (row.deals if row is not None else 0) + len(deals)
        self._held[login] = (await held.save(state, deals, datetime.now(UTC)), stored)


class SharedSimGateway(SimGateway):
    """A demo account's gateway whose account calls go through :class:`DemoAccounts`."""

    ACCOUNT_CALLS = frozenset({"connect", "account", "positions", "history_deals", "order_check", "order_send"})

    def __init__(self, accounts: DemoAccounts, login: int, *, password: str | None = None) -> None:
        super().__init__(accounts.terminal, login, password=password)
        self._accounts = accounts

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if getattr(fn, "__name__", "") not in self.ACCOUNT_CALLS:
            return await super()._run(fn, *args)
        return await self._accounts.call(self.login, lambda: self._locked(fn, *args))
