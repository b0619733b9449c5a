"""AlertEvaluator: bus wiring, persistence before notification, restarts without re-firing."""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Sequence
from dataclasses import replace

from domain.alerts import AlertEvaluator, AlertFired, AlertKind, AlertRepository, AlertRule, AlertStatus, Direction
from domain.market.models import Tick
from domain.market.tickbus import InProcessTickBus


class FakeAlertRepository:
    """In-memory stand-in with the contract of the SQL repository."""

    def __init__(self, rules: Sequence[AlertRule]) -> None:
        self.rows = {r.id: r for r in rules}
        self.calls: list[tuple[int, int, float, bool]] = []
        self.fail_next = 0

    async def list_active(self, symbols: Collection[str] | None = None) -> Sequence[AlertRule]:
        return [r for r in self.rows.values()
                if r.status is not AlertStatus.TRIGGERED and (symbols is None or r.symbol in symbols)]

    async def mark_triggered(self, alert_id: int, time_msc: int, price: float, deactivate: bool) -> bool:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("database is down")
        self.calls.append((alert_id, time_msc, price, deactivate))
        row = self.rows.get(alert_id)
        if row is None or row.status is AlertStatus.TRIGGERED:
            return False
        if row.last_triggered_msc is not None and row.last_triggered_msc >= time_msc:
            return False
        self.rows[alert_id] = replace(row, last_triggered_msc=time_msc, last_price=price,
                                      status=AlertStatus.TRIGGERED if deactivate else row.status)
        return True


def _rules() -> list[AlertRule]:
    return [
        AlertRule(1, 10, "EURUSD", AlertKind.ABOVE, threshold=1.1),
        AlertRule(2, 10, "EURUSD", AlertKind.CROSS, threshold=1.1, repeat=True, cooldown_s=60, created_price=1.0),
        AlertRule(3, 11, "EURUSD", AlertKind.BELOW, threshold=1.0, repeat=True, cooldown_s=600),
        AlertRule(4, 11, "GBPUSD", AlertKind.ABOVE, threshold=1.3),
        AlertRule(5, 11, "EURUSD", AlertKind.BELOW, threshold=0.5, status=AlertStatus.PAUSED),
    ]


def _tick(t_s: float, bid: float, sym: str = "EURUSD") -> Tick:
    return Tick(sym, int(t_s * 1000), bid, bid + 0.0001)


async def _evaluator(repo: FakeAlertRepository, **kw: object) -> tuple[AlertEvaluator, InProcessTickBus]:
    evaluator = AlertEvaluator(repo, **kw)  # type: ignore[arg-type]
    bus = InProcessTickBus()
    bus.add_listener(evaluator.on_tick)
    await evaluator.load()
    return evaluator, bus


def test_fake_repository_satisfies_the_protocol() -> None:
    repo: AlertRepository = FakeAlertRepository([])
    assert repo is not None


async def test_fired_alerts_are_persisted_then_notified() -> None:
    repo = FakeAlertRepository(_rules())
    evaluator, bus = await _evaluator(repo)
    assert len(evaluator.index) == 5 and evaluator.count_for_user(11) == 3
    notified: list[AlertFired] = []

    async def notify(event: AlertFired) -> None:
        assert repo.calls[-1][0] == event.rule.id  # stored before the user hears of it
        notified.append(event)

    bus.publish_many([_tick(1, 1.05), _tick(2, 1.12), _tick(3, 0.99), _tick(4, 1.3, "GBPUSD")])
    assert evaluator.pending == 4  # nothing was awaited on the tick path
    assert await evaluator.flush(notify) == 4
    assert [(e.rule.id, e.direction, e.price) for e in notified] == [
        (1, Direction.UP, 1.12), (2, Direction.UP, 1.12), (3, Direction.DOWN, 0.99), (4, Direction.UP, 1.3),
    ]
    assert repo.calls == [(1, 2000, 1.12, True), (2, 2000, 1.12, False), (3, 3000, 0.99, False),
                          (4, 4000, 1.3, True)]
    assert repo.rows[1].status is AlertStatus.TRIGGERED and repo.rows[2].status is AlertStatus.ACTIVE
    assert evaluator.count_for_user(10) == 1 and evaluator.persisted == 4


async def test_restart_does_not_fire_again() -> None:
    repo = FakeAlertRepository(_rules())
    first, bus = await _evaluator(repo)
    bus.publish_many([_tick(1, 1.05), _tick(2, 1.12), _tick(3, 0.99)])
    await first.flush()
    assert {c[0] for c in repo.calls} == {1, 2, 3}

    second, bus2 = await _evaluator(repo)  # the process restarted
    assert len(second.index) == 4 and 1 not in second.index  # the one-shot is finished
    assert second.index.get(2).last_triggered_msc == 2000
    # rule 2 (cross, fired up at 2 s) cools until 62 s and re-arms below the level;
    # rule 3 (below, fired at 3 s) cools until 603 s
    bus2.publish_many([_tick(4, 0.99), _tick(5, 0.98), _tick(500, 0.97)])
    assert second.pending == 0
    bus2.publish_many([_tick(604, 0.96), _tick(605, 1.2)])
    await second.flush()
    assert [(c[0], c[1]) for c in repo.calls[3:]] == [(3, 604_000), (2, 605_000)]


async def test_repeated_persist_is_not_notified_twice() -> None:
    repo = FakeAlertRepository(_rules())
    evaluator, bus = await _evaluator(repo)
    bus.publish(_tick(1, 1.2))
    notified: list[AlertFired] = []

    async def notify(event: AlertFired) -> None:
        notified.append(event)

    # another replica already recorded rule 1's trigger
    repo.rows[1] = replace(repo.rows[1], status=AlertStatus.TRIGGERED)
    assert await evaluator.flush(notify) == 1
    assert [e.rule.id for e in notified] == [2] and evaluator.skipped == 1


async def test_run_retries_after_a_repository_failure_and_stops_cleanly() -> None:
    repo = FakeAlertRepository(_rules())
    evaluator, bus = await _evaluator(repo, retry_delay=0.01)
    notified: list[int] = []

    async def notify(event: AlertFired) -> None:
        notified.append(event.rule.id)

    task = asyncio.create_task(evaluator.run(notify))
    repo.fail_next = 2
    bus.publish(_tick(1, 1.35, "GBPUSD"))
    for _ in range(100):
        await asyncio.sleep(0.01)
        if notified:
            break
    assert notified == [4] and evaluator.pending == 0
    bus.publish(_tick(2, 1.2))
    evaluator.stop()
    await asyncio.wait_for(task, 1)
    assert notified == [4, 1, 2]  # stop flushes what is queued


async def test_symbol_partition_loads_only_its_symbols() -> None:
    repo = FakeAlertRepository(_rules())
    evaluator, _bus = await _evaluator(repo, symbols=["GBPUSD"])
    assert [r.id for r in evaluator.index.rules()] == [4]
    evaluator.add(AlertRule(9, 1, "EURUSD", AlertKind.ABOVE, threshold=2.0))
    assert 9 not in evaluator.index


async def test_pause_resume_remove_go_through_the_index() -> None:
    repo = FakeAlertRepository(_rules())
    evaluator, bus = await _evaluator(repo)
    assert evaluator.pause(1) and evaluator.remove(3) is not None
    notified: list[int] = []

    async def notify(event: AlertFired) -> None:
        notified.append(event.rule.id)

    bus.publish_many([_tick(1, 1.2), _tick(2, 0.4)])
    await evaluator.flush(notify)
    assert notified == [2]  # 1 is paused, 3 removed, 5 paused
    assert evaluator.resume(5) and evaluator.resume(1)
    bus.publish(_tick(3, 0.45))
    await evaluator.flush(notify)
    assert notified == [2, 5]
    assert evaluator.index.get(3) is None
    assert (evaluator.count_for_user(10), evaluator.count_for_user(11)) == (2, 1)  # 5 finished
