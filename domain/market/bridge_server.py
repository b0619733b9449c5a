"""The rpyc bridge server: serves a MetaTrader5 module to BridgeGateway.

On the Windows/Wine side it serves the real ``MetaTrader5`` module::

    python -m domain.market.bridge_server --host 127.0.0.1 --port 18812

and ``--sim`` serves the simulated module instead (tests, demos). Only
``call(name, args, kwargs)`` is exposed, for the allow-listed functions of
:data:`domain.market.bridge.SIGNATURES`; arguments are decoded from plain
data and validated again here, and module calls are serialized (the module
holds one global terminal connection). No classic/slave mode, no pickles.
Bind to 127.0.0.1 (or a private interface behind a tunnel): the protocol has
no authentication of its own.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

import rpyc
from rpyc.utils.server import ThreadedServer

from domain.market.bridge import check_call, decode, encode
from domain.market.errors import GatewayError

log = logging.getLogger(__name__)

PROTOCOL_CONFIG = {
    "allow_public_attrs": False,
    "allow_all_attrs": False,
    "allow_setattr": False,
    "allow_delattr": False,
    "allow_pickle": False,
    "import_custom_exceptions": False,
    "instantiate_custom_exceptions": False,
    "include_local_traceback": False,
}


class MT5Service(rpyc.Service):
    """Exposes the allow-listed functions of one MetaTrader5-like module."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        self._module = module
        self._lock = threading.Lock()

    def exposed_call(self, name: Any, args: Any, kwargs: Any) -> Any:
        try:
            plain_args = decode(args)
            plain_kwargs = decode(kwargs)
            if type(plain_args) is not tuple or type(plain_kwargs) is not dict:
                raise ValueError("args must be a tuple and kwargs a mapping")
            check_call(name, plain_args, plain_kwargs)
        except GatewayError as exc:
            log.warning("bridge call refused: %s", exc)
            raise ValueError(str(exc)) from None
        with self._lock:
            result = getattr(self._module, name)(*plain_args, **plain_kwargs)
        return encode(result)


def make_server(module: Any, host: str = "127.0.0.1", port: int = 18812) -> ThreadedServer:
    """A ready (not yet started) server; ``port=0`` picks a free port (see ``.port``)."""
    return ThreadedServer(
        MT5Service(module),
        hostname=host,
        port=port,
        protocol_config=PROTOCOL_CONFIG,
        logger=log,
    )


def serve(module: Any, host: str = "127.0.0.1", port: int = 18812) -> None:
    """Serve ``module`` until interrupted."""
    server = make_server(module, host, port)
    log.info("MT5 bridge serving on %s:%s", host, server.port)
    server.start()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the MetaTrader5 module over rpyc.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18812)
    parser.add_argument("--sim", action="store_true", help="serve the simulated terminal instead")
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    if opts.sim:
        from domain.market.sim import SimTerminal
        from domain.market.sim_module import SimMT5

        terminal = SimTerminal(opts.seed)
        terminal.open_demo_account()
        module: Any = SimMT5(terminal)
    else:
        import MetaTrader5 as module  # noqa: N813 - the real module, Windows only
    serve(module, opts.host, opts.port)


if __name__ == "__main__":
    main()
