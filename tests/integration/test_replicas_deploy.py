"""deploy/: the compose file, the proxy and the image agree with the code they run.

Docker itself may be missing where the tests run; these checks read the files:
every variable the deployment sets is one the settings know (or the database
image's), every command is a verb of the run contract, the proxy routes to the
bot replicas that exist, and `docker compose config` validates the file when
the compose plugin is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KNOWN = {name.upper() for name in Settings.model_fields}
IMAGE_VARS = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"}  # read by the postgres image / interpolation
VERBS = {"run", "worker", "migrate"}


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "compose.yaml").read_text()))


def _interpolated(text: str) -> set[str]:
    return set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", text))


def test_every_variable_is_one_the_settings_know() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        if name in ("postgres", "redis", "proxy"):
            continue
        env = service.get("environment") or {}
        unknown = set(env) - KNOWN
        assert not unknown, (name, unknown)
    example = [
        line.lstrip("# ").split("=", 1)[0]
        for line in (DEPLOY / ".env.example").read_text().splitlines()
        if re.match(r"^#? ?[A-Z][A-Z0-9_]*=", line)
    ]
    assert example and not set(example) - KNOWN - IMAGE_VARS
    assert not _interpolated((DEPLOY / "compose.yaml").read_text()) - set(example)  # every ${X} is documented


def test_required_settings_are_forced_and_shared() -> None:
    services = _compose()["services"]
    replicas = [services["bot-1"], services["bot-2"]]
    for replica in replicas:
        env = replica["environment"]
        assert env["WORKERS"] == "external" and env["REDIS_URL"].startswith("redis://")
        assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
        for required in ("WEBHOOK_URL", "WEBHOOK_SECRET", "SECRET_KEY"):
            assert ":?" in env[required]  # compose refuses to start without it
    assert replicas[0]["environment"] == replicas[1]["environment"]
    assert services["worker"]["environment"]["SECRET_KEY"] == replicas[0]["environment"]["SECRET_KEY"]


def test_commands_are_verbs_of_the_run_contract_and_start_in_order() -> None:
    services = _compose()["services"]
    verbs = {name: s["command"][3] for name, s in services.items() if s.get("command", [""])[0] == "python"}
    assert verbs == {"migrate": "migrate", "bot-1": "run", "bot-2": "run", "worker": "worker"}
    assert set(verbs.values()) <= VERBS
    for name in ("bot-1", "bot-2", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["postgres"]["image"] == "postgres:15" and services["redis"]["image"] == "redis:7"
    assert "healthcheck" in services["postgres"] and "healthcheck" in services["redis"]


def test_the_proxy_balances_the_replicas_and_hides_metrics() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    upstream = set(re.findall(r"server (bot-\d+):8080", conf))
    services = _compose()["services"]
    assert upstream == {n for n in services if n.startswith("bot-")} and len(upstream) == 2
    assert "location /webhooks/" in conf and "location = /healthz" in conf
    assert re.search(r"location = /metrics \{ return 404; \}", conf)


def test_the_image_runs_the_package_as_a_non_root_user_with_a_healthcheck() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert re.search(r"^USER hybrid$", dockerfile, re.M)
    assert '"/healthz"' in dockerfile or "/healthz" in dockerfile
    assert 'CMD ["python", "-m", "bot", "run"]' in dockerfile
    for needed in ("alembic", "locales", "bot", "handlers", "dialogs", "domain", "workers"):
        assert re.search(rf"^COPY {needed} {needed}$", dockerfile, re.M), needed  # read from the source tree


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("the docker compose plugin is not installed here")
    env = tmp_path / ".env"
    env.write_text((DEPLOY / ".env.example").read_text())
    result = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "--env-file", str(env), "config", "--quiet"],
        capture_output=True, text=True, cwd=DEPLOY,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_postgres_admits_every_process_pool() -> None:
    """Each app process may hold pool_size + max_overflow connections (domain/db/engine.py)."""
    from domain.db.engine import MAX_OVERFLOW, POOL_SIZE

    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    command = services["postgres"]["command"]
    limit = int(next(arg.split("=", 1)[1] for arg in command if arg.startswith("max_connections=")))
    per_process = POOL_SIZE + MAX_OVERFLOW
    processes = sum(1 for s in services.values() if s.get("command") and "bot" in str(s.get("command")))
    assert processes >= 3 and limit >= processes * per_process + 10


def test_the_mt5_override_gives_each_account_terminal_a_private_authenticated_bridge() -> None:
    """compose.mt5.yaml: the bots pool exactly the gateway services, on an internal network, with the secret."""
    text = (DEPLOY / "compose.mt5.yaml").read_text()
    mt5 = yaml.safe_load(text)
    services = mt5["services"]
    gateways = sorted(n for n in services if n.startswith("mt5-gw-"))
    assert gateways and "mt5-data" in services
    for name in ("bot-1", "bot-2", "worker"):
        env = services[name]["environment"]
        assert not set(env) - KNOWN, set(env) - KNOWN
        assert env["MT5_BACKEND"] == "rpyc" and env["MT5_RPYC_HOST"] == "mt5-data"
        assert sorted(e.split(":")[0] for e in env["MT5_RPYC_POOL"].split(",")) == gateways
        assert ":?" in env["MT5_BRIDGE_SECRET"] and "mt5" in services[name]["networks"]
    for name in [*gateways, "mt5-data"]:
        assert ":?" in services[name]["environment"]["MT5_BRIDGE_SECRET"] and "mt5" in services[name]["networks"]
    assert len({services[n]["volumes"][0] for n in [*gateways, "mt5-data"]}) == len(gateways) + 1  # own data each
    assert mt5["networks"]["mt5"]["internal"] is True
    example = (DEPLOY / ".env.example").read_text()
    assert not _interpolated(text) - set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, re.M))
    dockerfile = (DEPLOY / "mt5-gateway.Dockerfile").read_text()
    assert "--terminal-path" in dockerfile and "MetaTrader5" in dockerfile and "domain.market.bridge_server" in dockerfile
