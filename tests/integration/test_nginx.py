"""The shipped proxy (deploy/nginx.conf) in Debian's nginx, in front of the real web app on loopback.

nginx used to drop the WebSocket upgrade (``Connection ""`` and no ``Upgrade``), so the Mini App's live
ticks never arrived behind it. Here the shipped server block runs unchanged but for its two addresses
(upstreams pointed at the web app, listen on a loopback port): a page's socket opens through it and gets
a tick; plain requests and the webhooks still pass, /metrics stays hidden.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from domain.market.models import Tick
from tests.conftest import require
from tests.integration.test_web import ANN, Site, site  # noqa: F401  (the real web app on loopback)
from tests.servers import free_port

pytestmark = pytest.mark.integration

NGINX = "/usr/sbin/nginx"
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def nginx_missing() -> str | None:
    if not Path(NGINX).exists() and shutil.which("nginx") is None:
        return f"{NGINX} not found (apt-get install nginx)"
    return None


def templated(upstream_port: int, listen_port: int) -> str:
    """The shipped config with only its addresses changed."""
    conf = (DEPLOY / "nginx.conf").read_text()
    conf, replicas = re.subn(r"server bot-\d+:8080", f"server 127.0.0.1:{upstream_port}", conf)
    conf, listens = re.subn(r"listen 80;", f"listen 127.0.0.1:{listen_port};", conf)
    assert (replicas, listens) == (2, 1), "deploy/nginx.conf changed shape: update this template"
    return conf


@pytest.fixture
def proxy(site: Site, tmp_path: Path) -> Iterator[str]:  # noqa: F811
    require(nginx_missing())
    upstream = int(site.url.rsplit(":", 1)[1])
    port = free_port()
    (tmp_path / "default.conf").write_text(templated(upstream, port))
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"""daemon off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/default.conf;
}}
"""
    )
    check = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(main)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    proc = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(main)], stderr=subprocess.PIPE)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


async def _until_up(url: str) -> None:
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            try:
                async with http.get(url + "/healthz") as r:
                    if r.status in (200, 503):
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("nginx never answered")


async def test_a_live_tick_reaches_the_page_through_the_shipped_proxy(site: Site, proxy: str) -> None:  # noqa: F811
    url = f"http://{proxy}"
    await _until_up(url)
    await site.user(ANN)
    async with aiohttp.ClientSession() as http:
        async with http.get(url + "/api/me", headers={"Authorization": "tma " + site.init_data(ANN)}) as r:
            assert r.status == 200  # plain requests still pass (keepalive to the upstream)
        async with http.get(url + "/metrics") as r:
            assert r.status == 404
        async with http.ws_connect(url + "/app/ws") as ws:
            await ws.send_json({"auth": "tma " + site.init_data(ANN)})
            assert (await asyncio.wait_for(ws.receive_json(), 10))["type"] == "ready"
            await ws.send_json({"watch": ["EURUSD"]})
            assert (await asyncio.wait_for(ws.receive_json(), 10))["symbols"] == ["EURUSD"]
            site.app.market.feed.bus.publish(Tick("EURUSD", 1_900_000_000_000, 1.2345, 1.2347))
            msg = await asyncio.wait_for(ws.receive_json(), 10)
            assert msg["ticks"][-1]["s"] == "EURUSD" and msg["ticks"][-1]["t"] == 1_900_000_000_000
        async with http.get(url + "/app/ws") as r:  # a plain GET is no upgrade: refused, the proxy stays up
            assert r.status >= 400
        async with http.get(url + "/healthz") as r:
            assert r.status in (200, 503)
