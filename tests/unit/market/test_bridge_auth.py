"""Bridge authentication (HMAC challenge on MT5_BRIDGE_SECRET), the sim bridge's accounts, and the
atomic account check: a bridge never serves a client that does not know the secret, a password never
goes to an unauthenticated bridge off loopback, and an order never reaches a terminal on another account."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import rpyc

from domain.market.bridge import BridgeGateway, RemoteModule, open_connection
from domain.market.bridge_server import InsecureBind, make_server, parse_account, sim_module
from domain.market.errors import AccountMismatch, BridgeAuthError, GatewayAuthError
from domain.market.gateway import OrderRequest
from domain.market.models import Side
from domain.market.sim import SimTerminal
from domain.market.sim_module import SimMT5
from tests.unit.market.conftest import ServedModule
from tests.unit.market.test_bridge import Recording

ROOT = Path(__file__).resolve().parents[3]
SECRET = b"a-long-shared-bridge-secret"


class AuthServed(ServedModule):
    def __init__(self, module: object, secret: bytes | None) -> None:
        import threading
        import time

        self.server = make_server(module, "127.0.0.1", 0, secret=secret)
        self.port = self.server.port
        self.thread = threading.Thread(target=self.server.start, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 5
        while not self.server.active and time.monotonic() < deadline:
            time.sleep(0.005)


@pytest.fixture
def recording(terminal: SimTerminal) -> Recording:
    terminal.open_real_account("Pw-1", login=7100001, server="Broker-Live")
    return Recording(SimMT5(terminal))


async def test_the_right_secret_opens_the_bridge(recording: Recording) -> None:
    served = AuthServed(recording, SECRET)
    gw = BridgeGateway("127.0.0.1", served.port, login=7100001, password="Pw-1", server="Broker-Live", timeout=5,
                       retries=1, secret=SECRET, verify=True)  # fmt: skip
    try:
        await gw.connect()
        assert (await gw.account()).login == 7100001
    finally:
        await gw.close()
        served.close()


@pytest.mark.parametrize("secret", [None, b"a-wrong-secret"])
def test_no_or_a_wrong_secret_is_refused_before_any_call(recording: Recording, secret: bytes | None) -> None:
    served = AuthServed(recording, SECRET)
    try:
        with pytest.raises(BridgeAuthError) as err:
            RemoteModule("127.0.0.1", served.port, retries=1, secret=secret).initialize(
                login=7100001, password="Pw-1", server="Broker-Live"
            )
        assert err.value.code == "MKT-BRIDGE-AUTH"
        # a plain rpyc client (no handshake at all) reaches nothing either
        with pytest.raises(Exception):  # noqa: B017 - closed, garbled or timed out: never an answer
            conn = rpyc.connect("127.0.0.1", served.port, config={"sync_request_timeout": 2})
            conn.root.call("symbols_total", ("T", ()), ("D", ()))
    finally:
        served.close()
    assert recording.calls == []  # the module never saw a call, least of all a login


def test_a_client_with_a_secret_refuses_an_open_bridge(recording: Recording) -> None:
    served = AuthServed(recording, None)
    try:
        with pytest.raises(BridgeAuthError):
            RemoteModule("127.0.0.1", served.port, retries=1, secret=SECRET).initialize(
                login=7100001, password="Pw-1", server="Broker-Live"
            )
    finally:
        served.close()
    assert recording.calls == []


def test_no_password_goes_to_a_bridge_off_loopback_without_a_secret() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))  # were anything listening, the refusal comes before connecting
    with listener, pytest.raises(BridgeAuthError):
        RemoteModule("10.1.2.3", 18812, retries=1).initialize(login=1, password="secret", server="X")


def test_the_server_refuses_a_public_bind_without_a_secret() -> None:
    with pytest.raises(InsecureBind):
        make_server(SimMT5(SimTerminal(0)), "0.0.0.0", 0)
    result = subprocess.run(
        [sys.executable, "-m", "domain.market.bridge_server", "--sim", "--host", "0.0.0.0", "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 2 and "MT5_BRIDGE_SECRET" in result.stderr


def test_the_handshake_is_mutual(recording: Recording) -> None:
    """A client checks the server's proof too: a server without the secret cannot fake one."""
    served = AuthServed(recording, b"the-server-has-another-secret")
    try:
        with pytest.raises(BridgeAuthError):
            open_connection("127.0.0.1", served.port, secret=SECRET, timeout=5)
    finally:
        served.close()


async def test_the_sim_bridge_knows_exactly_its_accounts() -> None:
    module = sim_module([parse_account("7200001:Right-Pass:Broker-Live"), parse_account("7200002:Other:Broker-Live")])
    served = AuthServed(module, SECRET)
    try:
        wrong = BridgeGateway("127.0.0.1", served.port, login=7200001, password="wrong", server="Broker-Live",
                              timeout=5, retries=1, secret=SECRET)  # fmt: skip
        with pytest.raises(GatewayAuthError):
            await wrong.connect()
        await wrong.close()
        unknown = BridgeGateway("127.0.0.1", served.port, login=5000001, password="x", server="Broker-Live",
                                timeout=5, retries=1, secret=SECRET)  # fmt: skip
        with pytest.raises(GatewayAuthError):
            await unknown.connect()
        await unknown.close()
        right = BridgeGateway("127.0.0.1", served.port, login=7200001, password="Right-Pass", server="Broker-Live",
                              timeout=5, retries=1, secret=SECRET)  # fmt: skip
        await right.connect()
        info = await right.account()
        assert (info.login, info.server, info.is_demo) == (7200001, "Broker-Live", False)
        await right.close()
    finally:
        served.close()
    with pytest.raises(Exception, match="LOGIN:PASSWORD:SERVER"):
        parse_account("not-a-login:pw:srv")


async def test_an_order_never_reaches_a_terminal_on_another_account(terminal: SimTerminal) -> None:
    a = terminal.open_real_account("Pw-A", login=7300001, server="Broker-Live")
    b = terminal.open_real_account("Pw-B", login=7300002, server="Broker-Live")
    served = AuthServed(SimMT5(terminal), SECRET)
    gw = BridgeGateway("127.0.0.1", served.port, login=a, password="Pw-A", server="Broker-Live", timeout=5,
                       retries=1, secret=SECRET, verify=True)  # fmt: skip
    rogue = RemoteModule("127.0.0.1", served.port, retries=1, secret=SECRET)
    try:
        await gw.connect()
        assert (await gw.account()).login == a
        assert rogue.login(b, password="Pw-B", server="Broker-Live") is True  # someone switches the terminal
        with pytest.raises(AccountMismatch) as err:
            await gw.order_send(OrderRequest.market("EURUSD", Side.BUY, 0.1))
        assert err.value.actual == (b, "Broker-Live") and err.value.expected == (a, "Broker-Live")
        # even a request that skips the client-side check is refused by the bridge itself
        gw.remote.expect = (a, "Broker-Live")
        with pytest.raises(AccountMismatch):
            gw.remote.order_send({"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "price": 1.0})
        assert terminal.positions(a) == [] and terminal.positions(b) == []
    finally:
        rogue.close()
        await gw.close()
        served.close()


def test_the_plain_sim_bridge_still_serves_loopback_without_a_secret() -> None:
    """``bridge_server --sim`` (no --account, no secret): one demo account on loopback, as before."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "MT5_BRIDGE_SECRET"}
    proc = subprocess.Popen([sys.executable, "-m", "domain.market.bridge_server", "--sim", "--port", "0"], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline().decode().split()[1])
        remote = RemoteModule("127.0.0.1", port, retries=2, backoff=0.1)
        assert remote.initialize() is True and remote.account_info().login == 5_000_001
        remote.close()
    finally:
        proc.terminate()
        proc.wait(10)
