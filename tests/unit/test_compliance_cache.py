"""The disclosure gate's per-process cache: dropped on request, and never refilled by a read older than the drop."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from domain.compliance import CURRENT, ComplianceService, Consent, Document

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


class Consents:
    """A consent store whose read can be held open (a query in flight while another process erases the user)."""

    def __init__(self) -> None:
        self.rows = [Consent(Document.RISK, CURRENT[Document.RISK], NOW)]
        self.queries = 0
        self.hold: asyncio.Event | None = None

    async def accepted(self, user_id: int) -> list[Consent]:
        self.queries += 1
        rows = list(self.rows)
        if self.hold is not None:
            await self.hold.wait()
        return rows


class Unit:
    def __init__(self) -> None:
        self.consents = Consents()


async def test_a_drop_forgets_and_a_read_from_before_it_is_not_remembered() -> None:
    service, unit = ComplianceService(), Unit()
    assert await service.trading_unlocked(unit, 7)  # type: ignore[arg-type]
    assert await service.trading_unlocked(unit, 7)  # type: ignore[arg-type]
    assert unit.consents.queries == 1  # remembered
    service.forget(7)
    unit.consents.rows = []  # erased
    assert not await service.trading_unlocked(unit, 7)  # type: ignore[arg-type]

    unit.consents.rows = [Consent(Document.RISK, CURRENT[Document.RISK], NOW)]
    unit.consents.hold = asyncio.Event()
    reading = asyncio.create_task(service.trading_unlocked(unit, 7))  # type: ignore[arg-type]
    await asyncio.sleep(0)
    unit.consents.rows = []
    service.forget(7)  # the erasure's notice arrives while the read is in flight
    unit.consents.hold.set()
    assert await reading  # that update saw the consent as it was when it read...
    unit.consents.hold = None
    assert not await service.trading_unlocked(unit, 7)  # type: ignore[arg-type]  # ...but it is not remembered


async def test_the_cache_keeps_the_most_recently_checked_users_and_reads_the_others_again(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("domain.compliance.UNLOCKED_CACHED", 2)
    service, unit = ComplianceService(), Unit()
    for user in (1, 2):
        assert await service.trading_unlocked(unit, user)  # type: ignore[arg-type]
    assert await service.trading_unlocked(unit, 1)  # type: ignore[arg-type]  # a hit: 1 is now the freshest
    assert unit.consents.queries == 2
    assert await service.trading_unlocked(unit, 3)  # type: ignore[arg-type]  # pushes out 2, the stalest
    assert unit.consents.queries == 3
    assert await service.trading_unlocked(unit, 1)  # type: ignore[arg-type]
    assert unit.consents.queries == 3  # still remembered
    assert await service.trading_unlocked(unit, 2)  # type: ignore[arg-type]  # read again, still accepted
    assert unit.consents.queries == 4
