"""Workers apart from the bot: alert rules reach another process's evaluator, alerts go out through the
outbox, one scheduler leads among many, retention, and `python -m bot worker` as a real process."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from bot.settings import Settings
from domain.db.models import AgentVoteRow, ErrorEventRow, NotificationRow, PaymentInboxRow, UsageEventRow
from domain.db.outbox import SqlOutboxRepository
from domain.leader import Lease
from domain.market.clock import ManualClock
from domain.outbox import Kind, Message
from tests.bot.market.conftest import START, Unlimited
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.harness import Harness, build_harness
from tests.servers import free_port
from workers.scheduler import Job, Scheduler, retention_job

ROOT = Path(__file__).resolve().parents[2]


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


def _alerts(telegram: FakeTelegram) -> list[str]:
    """Fired-alert messages (in Spanish: the user wrote in Spanish)."""
    return [c.text for c in telegram.sent() if "Precio" in c.text and "EURUSD</b>" in c.text]


@pytest.fixture
async def pair(
    pg_url: str, redis_url: str, telegram: FakeTelegram, tmp_path: Path
) -> AsyncIterator[tuple[Harness, Harness, ManualClock]]:
    """A bot replica (WORKERS=external) and a worker on one PostgreSQL + Redis, on one market clock."""
    settings = Settings(database_url=pg_url, redis_url=redis_url, data_dir=tmp_path, secret_key="test-secret")
    bot = await build_harness(settings.model_copy(update={"workers": "external"}), telegram, limiter=Unlimited())
    worker = await build_harness(settings, telegram, limiter=Unlimited())
    clock = ManualClock(START)
    for h in (bot, worker):
        h.app.market.hub.use_clock(clock)
        h.deliver_outbox = False
    yield bot, worker, clock
    await bot.close()
    await worker.close()


async def test_an_alert_added_in_the_bot_fires_in_the_worker_once(
    pair: tuple[Harness, Harness, ManualClock],
) -> None:
    bot, worker, clock = pair
    runtime = worker.app.market
    runtime.attach_outbox(worker.app.i18n)
    assert runtime.follower is not None
    follow = asyncio.create_task(runtime.follower.run())
    try:
        await asyncio.wait_for(runtime.follower.subscribed.wait(), 10)
        price = (await runtime.hub.tick("EURUSD")).bid
        level = round(price + 0.0004, 5)
        added = await bot.send(f"/alerts add EURUSD > {level}", lang="es")
        fired_id = int(added[0].text.split("#")[1].split()[0])
        paused = await bot.send(f"/alerts add EURUSD > {level}", lang="es")
        paused_id = int(paused[0].text.split("#")[1].split()[0])
        await bot.press(f"al:pause:{paused_id}", lang="es")
        await _until(lambda: runtime.follower.applied >= 3)  # type: ignore[union-attr]
        assert fired_id in runtime.evaluator.index and paused_id in runtime.evaluator.index
        # the bot process evaluates nothing: no feed runs there, and nothing was queued by it
        for _ in range(2000):
            clock.advance(5)
            await runtime.feed.poll_once()
            await runtime.evaluator.flush()
            if await worker.app.drain_outbox(worker.bot):
                break
        fired = _alerts(worker.telegram)
        assert len(fired) == 1 and f"#{fired_id}:" in fired[0], worker.telegram.sent()[-1:]
        async with worker.app.sessionmaker() as session:
            rows = (await session.scalars(select(NotificationRow))).all()
        assert [(r.key.split(":")[1], r.kind, r.status) for r in rows] == [(str(fired_id), "alert", "sent")]
        # deleting in the bot removes it from the worker too
        await bot.press(f"al:del:{paused_id}", lang="es")
        await _until(lambda: paused_id not in runtime.evaluator.index)
        for _ in range(50):
            clock.advance(5)
            await runtime.feed.poll_once()
            await runtime.evaluator.flush()
        await worker.app.drain_outbox(worker.bot)
        assert len(_alerts(worker.telegram)) == 1
    finally:
        follow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follow


async def test_a_follower_that_reconnects_reloads_every_rule(pair: tuple[Harness, Harness, ManualClock]) -> None:
    bot, worker, _ = pair
    runtime = worker.app.market
    assert runtime.follower is not None
    await bot.send("/alerts add EURUSD > 1.9")  # published while nobody listens: lost on the channel
    assert len(runtime.evaluator.index) == 0
    await runtime.follower.apply(b"not json")  # malformed: ignored
    follow = asyncio.create_task(runtime.follower.run())
    try:
        await asyncio.wait_for(runtime.follower.subscribed.wait(), 10)
        redis = Redis.from_url(worker.app.settings.redis_url or "")
        try:
            await redis.execute_command("CLIENT", "KILL", "TYPE", "pubsub")  # the connection drops
        finally:
            await redis.aclose()
        await _until(lambda: len(runtime.evaluator.index) == 1)  # resubscribed, and reloaded from the database
    finally:
        follow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follow


async def test_exactly_one_scheduler_leads_and_hands_over(redis_url: str) -> None:
    redis = Redis.from_url(redis_url)
    runs: dict[str, int] = {"a": 0, "b": 0}

    def job(name: str) -> Job:
        async def run() -> None:
            runs[name] += 1

        return Job("tick", 0.05, run)

    a, b = Scheduler(redis, [job("a")], ttl=0.6), Scheduler(redis, [job("b")], ttl=0.6)
    task_a = asyncio.create_task(a.run_forever())
    await asyncio.wait_for(a.leading.wait(), 5)
    task_b = asyncio.create_task(b.run_forever())
    try:
        await asyncio.sleep(0.5)
        assert a.leading.is_set() and not b.leading.is_set() and runs["a"] > 0 and runs["b"] == 0
        # the leader dies without handing over (kill -9): its lease expires, then the other takes over
        a.lease.release = _nothing  # type: ignore[method-assign]
        task_a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task_a
        died = time.monotonic()
        await asyncio.wait_for(b.leading.wait(), 5)
        assert time.monotonic() - died > 0.2  # not before the dead leader's lease ran out
        before = runs["b"]
        await asyncio.sleep(0.3)
        assert runs["b"] > before
        # a leader that stops hands over at once (no wait for expiry)
        c = Scheduler(redis, [job("a")], ttl=3)  # polls every second
        task_c = asyncio.create_task(c.run_forever())
        task_b.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task_b
        await asyncio.wait_for(c.leading.wait(), 5)
        task_c.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task_c
    finally:
        for t in (task_a, task_b):
            t.cancel()
        await redis.aclose()


async def _nothing() -> None:
    return None


async def test_without_redis_the_only_process_leads() -> None:
    assert await Lease(None, "scheduler").acquire()
    ran = asyncio.Event()

    async def run() -> None:
        ran.set()

    scheduler = Scheduler(None, [Job("once", 60, run)])
    task = asyncio.create_task(scheduler.run_forever())
    try:
        await asyncio.wait_for(ran.wait(), 5)
        assert scheduler.leading.is_set()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_retention_removes_only_old_data(harness: Harness) -> None:
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=400), now - timedelta(days=1)
    async with harness.app.sessionmaker() as session:
        for i, at in enumerate((old, recent)):
            session.add(UsageEventRow(id=f"u{i}", user_id=1, kind="command", name="price", quantity=1, at=at))
            session.add(ErrorEventRow(at=at, code="X", ref=f"r{i}", user_hash=None, context="t", message="m"))
            session.add(AgentVoteRow(symbol="EURUSD", timeframe="H1", time=int(at.timestamp()), agent="trend",
                                     direction="buy", confidence=0.6, weight=1.0))  # fmt: skip
            for status in ("done", "pending"):  # a payment still waiting is never removed
                session.add(PaymentInboxRow(
                    kind="paid", charge_id=f"ch{i}{status}", user_id=1, payload="p", currency="XTR", total_amount=1,
                    is_recurring=False, is_first_recurring=False, expires_at=None, raw={}, status=status, attempts=0,
                    last_error=None, told_pending=False, received_at=at, next_attempt_at=at,
                    done_at=at if status == "done" else None,
                ))  # fmt: skip
        repo = SqlOutboxRepository(session)
        await repo.add(Message("alert:old:sent", 1, "t", Kind.ALERT), old)
        await repo.add(Message("alert:old:waiting", 1, "t", Kind.ALERT), old)  # still waiting: kept
        await repo.add(Message("alert:new:sent", 1, "t", Kind.ALERT), recent)
        await session.commit()
        for key in ("alert:old:sent", "alert:new:sent"):
            row = await session.scalar(select(NotificationRow).where(NotificationRow.key == key))
            row.status = "sent"  # type: ignore[union-attr]
        await session.commit()
    removed = await retention_job(harness.app)
    assert removed["outbox"] == 1 and removed["usage_events"] == 1 and removed["error_events"] == 1
    assert removed["payment_inbox"] == 1 and removed["agent_votes"] == 1
    async with harness.app.sessionmaker() as session:
        assert list(await session.scalars(select(AgentVoteRow.time))) == [int(recent.timestamp())]
        keys = set(await session.scalars(select(NotificationRow.key)))
        assert keys == {"alert:old:waiting", "alert:new:sent"}
        assert await session.scalar(select(func.count()).select_from(UsageEventRow)) == 1
    assert (await retention_job(harness.app))["outbox"] == 0


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "WEBHOOK_", "DATABASE_", "REDIS_"))}
    env.update(DATA_DIR=str(tmp_path / "var"), LOG_LEVEL="INFO", PYTHONUNBUFFERED="1", **extra)
    return env


async def _exec(tmp_path: Path, verb: str, **extra: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", verb, cwd=ROOT, env=_env(tmp_path, **extra),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output = (await asyncio.wait_for(proc.communicate(), 60))[0].decode()
    return proc.returncode or 0, output


async def test_split_deployment_refuses_to_start_without_redis_or_a_shared_key(tmp_path: Path) -> None:
    code, output = await _exec(tmp_path, "worker")
    assert code == 2 and "BOT_TOKEN" in output
    code, output = await _exec(tmp_path, "worker", BOT_TOKEN=TOKEN)
    assert code == 2 and "REDIS_URL" in output
    code, output = await _exec(tmp_path, "run", BOT_TOKEN=TOKEN, WORKERS="external")
    assert code == 2 and "REDIS_URL" in output
    for verb, extra in (("worker", {}), ("run", {"WORKERS": "external"})):  # every process must share one key
        code, output = await _exec(tmp_path, verb, BOT_TOKEN=TOKEN, REDIS_URL="redis://127.0.0.1:1/0", **extra)
        assert code == 2 and "SECRET_KEY" in output, output


async def test_the_worker_process_delivers_the_outbox(
    pg_url: str, redis_url: str, telegram: FakeTelegram, tmp_path: Path
) -> None:
    import aiohttp

    port = free_port()
    env = _env(
        tmp_path, BOT_TOKEN=TOKEN, TELEGRAM_API_URL=telegram.url, WEB_PORT=str(port), DATABASE_URL=pg_url,
        REDIS_URL=redis_url, SECRET_KEY="test-secret",
    )  # fmt: skip
    log = tmp_path / "worker.log"
    with log.open("wb") as out:  # a file, not a pipe nobody reads while it runs
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "worker", cwd=ROOT, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    try:
        health: dict[str, object] = {}
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline and not health:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                        health = dict(await resp.json())  # 200, or 503 while a component warms up
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        workers = str(health["components"]["workers"]["detail"])  # type: ignore[index]
        for name in ("outbox-sender", "scheduler", "alert-evaluator", "alert-changes", "broadcast-sender"):
            assert name in workers, workers
        settings = Settings(database_url=pg_url, secret_key="test-secret", data_dir=tmp_path)
        h = await build_harness(settings, telegram)
        try:
            await h.send("/start", user=4242)  # the user exists; the harness itself sends nothing proactive
            assert await h.app.notifier.send(4242, "from the bot replica", key="ticket:1:answer:1:1")  # type: ignore[union-attr]
        finally:
            await h.close()
        await _until(lambda: any(c.text == "from the bot replica" for c in telegram.sent()), 20)
        await asyncio.sleep(0.5)  # and only once
        assert [c.text for c in telegram.sent() if c.text == "from the bot replica"] == ["from the bot replica"]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 60)
    output = log.read_text()
    assert proc.returncode == 0, output[-3000:]
    assert "Hybrid Trader worker ready" in output
