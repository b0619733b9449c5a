"""Build the configured TradingGateway (``MT5_BACKEND``: sim, native, rpyc)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from domain.market.clock import Clock
from domain.market.gateway import TradingGateway

BACKENDS = ("sim", "native", "rpyc")


def make_gateway(
    backend: str = "sim",
    *,
    host: str = "127.0.0.1",
    port: int = 18812,
    seed: int = 0,
    login: int | None = None,
    password: str | None = None,
    server: str | None = None,
    timeout: float = 10.0,
    terminal: Any = None,
    clock: Clock | None = None,
    replay: dict[str, str | Path] | None = None,
    module: Any = None,
    demo_balance: float = 10_000.0,
    demo_currency: str = "USD",
    demo_leverage: int = 100,
    secret: str | bytes | None = None,
) -> TradingGateway:
    """A gateway for ``backend``.

    ``sim``: an account of ``terminal`` (a new seeded :class:`SimTerminal`
    with ``clock``/``replay`` when None); without ``login`` a demo account is
    opened with ``demo_*``. ``native``: the local MetaTrader5 module (or
    ``module``). ``rpyc``: the bridge server at ``host:port``.
    """
    kind = backend.strip().lower()
    if kind == "sim":
        from domain.market.sim import SimGateway, SimTerminal

        term = terminal if terminal is not None else SimTerminal(seed, clock=clock, replay=replay)
        if login is None:
            login = term.open_demo_account(demo_balance, demo_currency, demo_leverage, password=password)
        return SimGateway(term, login, password=password)
    if kind == "native":
        from domain.market.native import NativeGateway

        return NativeGateway(module=module, login=login, password=password, server=server, timeout=timeout)
    if kind == "rpyc":
        from domain.market.bridge import BridgeGateway

        return BridgeGateway(host, port, login=login, password=password, server=server, timeout=timeout, secret=secret)
    raise ValueError(f"MT5_BACKEND must be one of {', '.join(BACKENDS)}, not {backend!r}")
