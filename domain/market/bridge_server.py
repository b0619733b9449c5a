"""The rpyc bridge server: serves ONE MetaTrader5 terminal to BridgeGateway.

On the Windows/Wine side it serves the real ``MetaTrader5`` module::

    MT5_BRIDGE_SECRET=... python -m domain.market.bridge_server --host 10.0.0.5 --port 18812 \\
        [--terminal-path "C:\\MT5\\t1\\terminal64.exe"]

``--terminal-path`` pins the terminal installation (started in portable mode,
so each installation keeps its own data folder and its own logged-in
account). ``--sim`` serves the simulated module instead (tests, demos): with
``--account LOGIN:PASSWORD:SERVER`` (repeatable) a terminal that knows
exactly those (real, password-protected) accounts and refuses wrong
passwords; without, one demo account as before.

Only ``call(name, args, kwargs)`` is exposed, for the allow-listed functions
of :data:`domain.market.bridge.SIGNATURES`; arguments are decoded from plain
data and validated again here, and module calls are serialized (the module
holds one global terminal connection). No classic/slave mode, no pickles.
Every connection first passes the HMAC challenge of
:class:`~domain.market.bridge.HandshakeAuthenticator` with
``MT5_BRIDGE_SECRET``; without a secret the server binds to loopback only
(it refuses to start otherwise). The secret is read from the environment,
never from the command line (``ps`` shows arguments to every local user).
Once listening it prints ``LISTENING <port>`` on stdout (``--port 0`` picks
a free port: how the ``native`` pool finds its children).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from typing import Any

import rpyc
from rpyc.utils.server import ThreadedServer

from domain.market.bridge import (
    ACCOUNT_CALLS,
    MISMATCH,
    HandshakeAuthenticator,
    check_call,
    check_expect,
    decode,
    encode,
    is_loopback,
)
from domain.market.errors import GatewayError

log = logging.getLogger(__name__)

SECRET_ENV = "MT5_BRIDGE_SECRET"

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


class InsecureBind(ValueError):
    """A non-loopback address without a secret: anyone on that network could trade."""


class MT5Service(rpyc.Service):
    """Exposes the allow-listed functions of one MetaTrader5-like module."""

    def __init__(self, module: Any) -> None:
        super().__init__()
        self._module = module
        self._lock = threading.Lock()

    def exposed_call(self, name: Any, args: Any, kwargs: Any, expect: Any = None) -> Any:
        """``expect`` (login, server): for an account call, first check the terminal is on that
        account, under the same lock as the call (answers ``("M", login, server)`` when not)."""
        try:
            plain_args = decode(args)
            plain_kwargs = decode(kwargs)
            if type(plain_args) is not tuple or type(plain_kwargs) is not dict:
                raise ValueError("args must be a tuple and kwargs a mapping")
            check_call(name, plain_args, plain_kwargs)
            account = check_expect(decode(expect)) if expect is not None and name in ACCOUNT_CALLS else None
        except GatewayError as exc:
            log.warning("bridge call refused: %s", exc)
            raise ValueError(str(exc)) from None
        with self._lock:
            if account is not None:
                info = self._module.account_info()
                if info is not None and (int(info.login), str(info.server).casefold()) != (
                    account[0], account[1].casefold()
                ):
                    log.warning("bridge: terminal is on %s, a call expected %s: refused", info.login, account[0])
                    return (MISMATCH, int(info.login), str(info.server))
            result = getattr(self._module, name)(*plain_args, **plain_kwargs)
        return encode(result)


class PinnedTerminal:
    """The module with its terminal installation pinned: ``initialize`` always opens ``path`` in
    portable mode, whatever a client asks (one installation, one account, one bridge)."""

    def __init__(self, module: Any, path: str) -> None:
        self._module = module
        self._path = path

    def initialize(self, path: str | None = None, **kwargs: Any) -> Any:
        kwargs["portable"] = True
        return self._module.initialize(self._path, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def make_server(
    module: Any, host: str = "127.0.0.1", port: int = 18812, *, secret: str | bytes | None = None
) -> ThreadedServer:
    """A ready (not yet started) server; ``port=0`` picks a free port (see ``.port``).

    InsecureBind when ``host`` is not loopback and there is no ``secret``."""
    key = secret.encode() if isinstance(secret, str) else secret
    if not key:
        key = None
        if not is_loopback(host):
            raise InsecureBind(f"refusing to serve on {host} without {SECRET_ENV}: bind to 127.0.0.1 or set it")
    return ThreadedServer(
        MT5Service(module),
        hostname=host,
        port=port,
        authenticator=HandshakeAuthenticator(key),
        protocol_config=PROTOCOL_CONFIG,
        logger=log,
    )


def serve(module: Any, host: str = "127.0.0.1", port: int = 18812, *, secret: str | bytes | None = None) -> None:
    """Serve ``module`` until interrupted."""
    server = make_server(module, host, port, secret=secret)
    log.info("MT5 bridge serving on %s:%s (%s)", host, server.port, "authenticated" if secret else "loopback, open")
    print(f"LISTENING {server.port}", flush=True)
    server.start()


def parse_account(raw: str) -> tuple[int, str, str]:
    """``LOGIN:PASSWORD:SERVER`` (the password may not contain a colon; the server may)."""
    login, sep, rest = raw.partition(":")
    password, sep2, server = rest.partition(":")
    if not (sep and sep2 and login.isdigit() and int(login) > 0 and password and server):
        raise argparse.ArgumentTypeError("expected LOGIN:PASSWORD:SERVER (a positive login, a password, a server)")
    return int(login), password, server


def sim_module(accounts: list[tuple[int, str, str]], seed: int = 0) -> Any:
    """A simulated terminal knowing exactly ``accounts`` (or one demo account when there are none)."""
    from domain.market.sim import SimTerminal
    from domain.market.sim_module import SimMT5

    terminal = SimTerminal(seed)
    if not accounts:
        terminal.open_demo_account()
    for login, password, server in accounts:
        terminal.open_real_account(password, login=login, server=server)
    return SimMT5(terminal)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve one MetaTrader5 terminal over rpyc.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18812)
    parser.add_argument("--sim", action="store_true", help="serve the simulated terminal instead")
    parser.add_argument("--account", action="append", type=parse_account, default=[], metavar="LOGIN:PASSWORD:SERVER",
                        help="with --sim: an account the simulated terminal knows (repeatable)")  # fmt: skip
    parser.add_argument("--terminal-path", help="the terminal installation to drive (portable mode)")
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    if opts.account and not opts.sim:
        parser.error("--account needs --sim (a real terminal knows its accounts from the broker)")
    if opts.sim:
        module: Any = sim_module(opts.account, opts.seed)
    else:
        import MetaTrader5 as module  # noqa: N813 - the real module, Windows only
    if opts.terminal_path:
        module = PinnedTerminal(module, opts.terminal_path)
    try:
        serve(module, opts.host, opts.port, secret=os.environ.get(SECRET_ENV) or None)
    except InsecureBind as exc:
        parser.exit(2, f"{exc}\n")


if __name__ == "__main__":
    main()
