"""Link time and order latency through the MT5 terminal pool.

Usage: python bench/pool.py [--accounts N] [--orders N]

Starts N+1 ``python -m domain.market.bridge_server --sim`` processes (one market-data
terminal and N account terminals, every connection authenticated with a secret), a
migrated SQLite database and the real ``TradingService`` on ``MT5_BACKEND=rpyc`` with
``MT5_RPYC_POOL``. Then N users link N accounts at the same time (lease + login +
account checks), and each user sends ``--orders`` market orders in turn, all N users at
once (preview + confirm, each account call checked against the lease on both ends of the
bridge). Prints p50/p95/max; never asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import migrate
from domain.db.engine import create_engine, create_sessionmaker
from domain.db.repositories import load_tiers
from domain.db.terminals import SqlTerminalStore
from domain.db.trading import SqlDemoStore
from domain.db.uow import UnitOfWork
from domain.market.models import Side
from domain.tiers import TierCatalog
from domain.trading.crypto import SecretBox
from domain.trading.market import MarketHub
from domain.trading.models import AccountKind
from domain.trading.pool import TerminalPool, parse_endpoints
from domain.trading.service import TradingService
from tests.servers import Bridge, start_bridge
from tests.stores import seed_users

SECRET = "bench-pool-secret"
SERVER = "Broker-Live"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def _line(name: str, values: list[float]) -> str:
    return (f"{name:<34} n={len(values):<4} p50 {statistics.median(values) * 1000:7.1f} ms   "
            f"p95 {_pct(values, 0.95):7.1f} ms   max {max(values) * 1000:7.1f} ms")  # fmt: skip


def _database() -> str:
    url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='bench-pool-')) / 'bench.db'}"
    migrate.upgrade(url)  # alembic runs its own event loop: before ours starts
    return url


async def run(accounts: int, orders: int, url: str) -> None:
    creds = [(70_000_001 + i, f"Bench-Pass-{i}", SERVER) for i in range(accounts)]
    bridges: list[Bridge] = []
    engine = create_engine(url)
    sm = create_sessionmaker(engine)
    users = {1000 + i: "basic" for i in range(accounts)}
    await seed_users(sm, users, datetime.now(UTC))
    async with sm() as s:
        tiers = TierCatalog(await load_tiers(s))
    try:
        started = time.perf_counter()
        for _ in range(accounts + 1):
            bridges.append(start_bridge(creds, SECRET))
        print(f"{accounts + 1} bridge processes up in {time.perf_counter() - started:.2f} s")
        data, terminals = bridges[0], bridges[1:]
        pool = TerminalPool(parse_endpoints(",".join(b.endpoint for b in terminals)), SqlTerminalStore(sm),
                            secret=SECRET.encode())  # fmt: skip
        hub = MarketHub(backend="rpyc", host="127.0.0.1", port=data.port, pool=pool)
        await hub.start(SqlDemoStore(sm))
        trading, basic = TradingService(hub, tiers, SecretBox(b"bench")), tiers.get("basic")
        await hub.resolve("BTCUSD")  # warm the market-data gateway

        async def link(user: int, login: int, password: str) -> float:
            t0 = time.perf_counter()
            async with UnitOfWork(sm) as uow:
                await trading.link_live(uow, user, basic, str(login), SERVER, password)
            elapsed = time.perf_counter() - t0
            async with UnitOfWork(sm) as uow:
                await trading.switch(uow, user, basic, AccountKind.LIVE)
            return elapsed

        links = await asyncio.gather(*(link(u, c[0], c[1]) for u, c in zip(users, creds)))

        async def trade(user: int) -> tuple[list[float], list[float]]:
            previews, sends = [], []
            for _ in range(orders):
                t0 = time.perf_counter()
                async with UnitOfWork(sm) as uow:
                    p = await trading.preview_open(uow, user, basic, Side.BUY, "BTCUSD", 0.01, None, None)
                t1 = time.perf_counter()
                async with UnitOfWork(sm) as uow:
                    done = await trading.execute(uow, user, basic, p.order.id)
                t2 = time.perf_counter()
                assert done.ok, done
                previews.append(t1 - t0)
                sends.append(t2 - t1)
            return previews, sends

        results = await asyncio.gather(*(trade(u) for u in users))
        previews = [x for r in results for x in r[0]]
        sends = [x for r in results for x in r[1]]
        print(_line(f"link ({accounts} at once)", links))
        print(_line(f"order preview ({accounts} users at once)", previews))
        print(_line(f"order confirm->filled ({accounts} at once)", sends))
        figures = await hub.pool_figures()
        print(f"pool: {figures}")
        await hub.close()
    finally:
        for bridge in bridges:
            bridge.stop()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--orders", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(args.accounts, args.orders, _database()))


if __name__ == "__main__":
    main()
