"""/metrics counts what the bot did; JSON log lines carry the update and the hashed user."""

from __future__ import annotations

import io
import json
import logging

from aiohttp.test_utils import TestClient, TestServer

from bot.observability import JsonFormatter
from bot.web.app import create_web_app
from tests.harness import Harness


async def _metrics(harness: Harness) -> str:
    async with TestClient(TestServer(create_web_app(harness.app, harness.bot))) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        return await response.text()


async def test_metrics_count_commands_outcomes_and_errors(harness: Harness) -> None:
    await harness.send("/help")
    await harness.send("/help")
    await harness.press("cfg:setlang:xx")  # forged: a domain error
    text = await _metrics(harness)
    assert 'hybrid_updates_total{command="help",outcome="ok"} 2.0' in text
    assert 'hybrid_errors_total{code="INP-INVALID"} 1.0' in text
    assert 'hybrid_update_seconds_count{command="help"} 2.0' in text


async def test_log_lines_carry_update_id_and_hashed_user(harness: Harness) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("hybrid.errors")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        await harness.press("cfg:notify:bogus", user=31337)
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["level"] == "INFO" and "INP-INVALID" in line["msg"]
    assert isinstance(line["update_id"], int)
    assert line["user"] and "31337" not in json.dumps(line)
