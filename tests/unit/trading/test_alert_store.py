"""The alert store's firing claim on both databases: once per firing, and a repeating alert's cooldown
holds across processes (the claim reads the stored last firing, not an evaluator's memory)."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.alerts.models import AlertKind, AlertRule
from domain.db.engine import create_engine, create_sessionmaker
from domain.db.trading import SqlAlertStore, SqlTradingRepository
from tests.stores import seed_users

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)
T0 = int(NOW.timestamp() * 1000)


async def test_a_repeating_alert_fires_once_per_cooldown_whoever_evaluates_it(db_url: str) -> None:
    engine = create_engine(db_url)
    sm = create_sessionmaker(engine)
    try:
        await seed_users(sm, {7: "pro"}, NOW)
        async with sm() as s:
            rule = await SqlTradingRepository(s).add_alert(
                AlertRule(0, 7, "EURUSD", AlertKind.ABOVE, threshold=1.1, repeat=True, cooldown_s=60), NOW
            )
            await s.commit()
        worker_a, worker_b = SqlAlertStore(sm), SqlAlertStore(sm)  # two processes, each with its own memory
        assert await worker_a.mark_triggered(rule.id, T0, 1.1001, False)
        assert not await worker_a.mark_triggered(rule.id, T0, 1.1001, False)  # the same firing again
        assert not await worker_b.mark_triggered(rule.id, T0 + 30_000, 1.1002, False)  # inside the cooldown
        assert await worker_b.mark_triggered(rule.id, T0 + 61_000, 1.1003, False)
        assert await worker_a.mark_triggered(rule.id, T0 + 130_000, 1.1004, True)  # a final firing ends it
        assert not await worker_b.mark_triggered(rule.id, T0 + 200_000, 1.1005, False)
    finally:
        await engine.dispose()
