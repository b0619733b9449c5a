"""Throwaway PostgreSQL and Redis servers on loopback, for the integration tests.

Started once per test session in a temporary directory and removed afterwards.
PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` system user (Debian's package creates it).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pg_bin(name: str) -> str | None:
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else shutil.which(name)


def postgres_missing() -> str | None:
    if _pg_bin("initdb") is None or _pg_bin("pg_ctl") is None:
        return "PostgreSQL server binaries not found (apt-get install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and no 'postgres' user to run the server as"
    return None


def redis_missing() -> str | None:
    return None if shutil.which("redis-server") else "redis-server not found (apt-get install redis-server)"


@dataclass
class Server:
    url: str
    directory: Path
    stop_cmd: list[str]
    process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        elif self.stop_cmd:
            subprocess.run(self.stop_cmd, check=False, capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


def start_postgres() -> Server:
    directory = Path(tempfile.mkdtemp(prefix="ht-pg-"))
    data = directory / "data"
    port = free_port()
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    subprocess.run(
        _as_postgres([_pg_bin("initdb") or "initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]),
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {directory} -c fsync=off -c full_page_writes=off -c max_connections=200"
    subprocess.run(
        _as_postgres([_pg_bin("pg_ctl") or "pg_ctl", "-D", str(data), "-o", options, "-l", str(directory / "log"), "-w", "start"]),
        check=True,
        capture_output=True,
    )
    stop = _as_postgres([_pg_bin("pg_ctl") or "pg_ctl", "-D", str(data), "-m", "immediate", "stop"])
    return Server(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres", directory, stop)


def start_redis() -> Server:
    directory = Path(tempfile.mkdtemp(prefix="ht-redis-"))
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(directory)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.05)
    else:
        process.kill()
        raise RuntimeError("redis-server did not start")
    return Server(f"redis://127.0.0.1:{port}/0", directory, [], process)


@dataclass
class Bridge:
    """A ``python -m domain.market.bridge_server --sim`` process on a loopback port."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def start_bridge(accounts: list[tuple[int, str, str]], secret: str | None, log: Path | None = None) -> Bridge:
    """A simulated terminal knowing exactly ``accounts`` (login, password, server), behind ``secret``."""
    root = Path(__file__).resolve().parents[1]
    args = [sys.executable, "-m", "domain.market.bridge_server", "--sim", "--port", "0"]
    for login, password, server in accounts:
        args += ["--account", f"{login}:{password}:{server}"]
    env = {k: v for k, v in os.environ.items() if k != "MT5_BRIDGE_SECRET"}
    if secret is not None:
        env["MT5_BRIDGE_SECRET"] = secret  # through the environment, never the command line
    stderr = log.open("ab") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=stderr)
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    if not line.startswith("LISTENING "):
        process.kill()
        raise RuntimeError(f"the bridge did not start: {line!r}")
    return Bridge(int(line.split()[1]), process)


ROOT = Path(__file__).resolve().parents[1]


async def migrate_with_cli(database_url: str) -> bool:
    """``python -m bot migrate`` against ``database_url``, as an operator runs it; True when it succeeded."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "migrate", cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url},
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return await proc.wait() == 0
# A real-mode account the simulated bridge serves, for tests that reach a "live" terminal.
LIVE_LOGIN, LIVE_PASSWORD, LIVE_SERVER = 7_100_001, "Live-Pa55-word", "Broker-Live"


@contextlib.asynccontextmanager
async def sim_bridge(log_path: Path) -> AsyncIterator[int]:
    """A ``python -m domain.market.bridge_server --sim`` process serving the live test account; its port."""
    port = free_port()
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "domain.market.bridge_server", "--sim", "--port", str(port),
            "--account", f"{LIVE_LOGIN}:{LIVE_PASSWORD}:{LIVE_SERVER}", cwd=ROOT,
            stdout=log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise AssertionError("the bridge server never listened") from None
                    await asyncio.sleep(0.05)
            yield port
        finally:
            proc.kill()
            await proc.wait()
