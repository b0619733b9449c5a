"""How much of each tier quota a user has used.

AI analyses are counted from usage events since the start of the user's local
day. Count-type quotas (alerts, watchlist) are counted by the component that
owns them, which registers a counter here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from domain.clock import Clock, utcnow
from domain.metering import Meter, UsageKind
from domain.tiers import Quota
from domain.users import User

Counter = Callable[[int], Awaitable[int]]


class QuotaService:
    def __init__(self, meter: Meter, clock: Clock = utcnow) -> None:
        self._meter = meter
        self._clock = clock
        self._counters: dict[Quota, Counter] = {}

    def register(self, quota: Quota, counter: Counter) -> None:
        self._counters[quota] = counter

    def day_start(self, user: User) -> datetime:
        local = self._clock().astimezone(ZoneInfo(user.timezone))
        return local.replace(hour=0, minute=0, second=0, microsecond=0)

    async def usage(self, user: User) -> dict[Quota, int]:
        used = {Quota.AI_PER_DAY: await self._meter.used(user.id, UsageKind.FEATURE, Quota.AI_PER_DAY, self.day_start(user))}
        for quota, counter in self._counters.items():
            used[quota] = await counter(user.id)
        return used
