"""The ``native`` backend: the real ``MetaTrader5`` module (Windows only).

The module is imported lazily, on the gateway's own thread, at the first
call; tests inject a module object instead (e.g. :class:`SimMT5`). The
module is blocking and holds one global terminal connection, so every call
runs on ONE dedicated thread (see :class:`ThreadedModuleGateway`).
"""

from __future__ import annotations

import importlib
from typing import Any

from domain.market.errors import BackendNotInstalled
from domain.market.mt5client import ModuleClient, ThreadedModuleGateway


class LazyModule:
    """Imports a module at the first attribute access."""

    def __init__(self, name: str = "MetaTrader5") -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            try:
                self._module = importlib.import_module(self._name)
            except ImportError as exc:
                raise BackendNotInstalled(
                    f"the {self._name} package is not importable here ({exc}); "
                    "it runs on Windows only — on Linux use MT5_BACKEND=rpyc"
                ) from None
        return getattr(self._module, attr)


class NativeGateway(ThreadedModuleGateway):
    """TradingGateway over the MetaTrader5 module of the local terminal."""

    def __init__(
        self,
        *,
        module: Any = None,
        login: int | None = None,
        password: str | None = None,
        server: str | None = None,
        path: str | None = None,
        timeout: float = 30.0,
        init_timeout_ms: int = 60_000,
        verify: bool = False,
    ) -> None:
        client = ModuleClient(
            module if module is not None else LazyModule(),
            login=login,
            password=password,
            server=server,
            path=path,
            timeout_ms=init_timeout_ms,
            verify=verify,
        )
        super().__init__(client, timeout=timeout, thread_name="mt5-native")
