"""How much of each tier quota a user has used, and when the daily one renews.

AI analyses are counted per UTC day, the same window for everyone: it cannot be
moved by changing the profile's time zone (a window starting at the user's local
midnight restarted on every zone change, up to ~24 fresh quotas a day). Users see
when it renews in their own time (:meth:`QuotaService.renews_at`); the Stripe
overage report (domain/billing) counts the same days through :func:`ai_day_start`.

Count-type quotas (alerts, watchlist) are counted by the component that owns
them, which registers a counter here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta

from domain.clock import Clock
from domain.metering import Claim, Meter, UsageKind
from domain.tiers import Quota
from domain.users import User

Counter = Callable[[int], Awaitable[int]]

AI_DAY = timedelta(days=1)


def ai_day_start(at: datetime) -> datetime:
    """The start of the AI-quota day that holds ``at``: midnight UTC."""
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def ai_day(at: datetime) -> date:
    """The AI-quota day (a UTC date) an analysis made at ``at`` counts against."""
    return at.astimezone(UTC).date()


class QuotaService:
    def __init__(self, meter: Meter, clock: Clock | None = None) -> None:
        self._meter = meter
        self._clock = clock  # default: the meter's, so a use and the window it is counted in agree
        self._counters: dict[Quota, Counter] = {}

    def register(self, quota: Quota, counter: Counter) -> None:
        self._counters[quota] = counter

    def now(self) -> datetime:
        return (self._clock or self._meter.clock)()

    def day_start(self) -> datetime:
        """When the current AI-quota day began (UTC midnight)."""
        return ai_day_start(self.now())

    def renews_at(self) -> datetime:
        """When the day's AI analyses renew."""
        return self.day_start() + AI_DAY

    async def claim_ai(self, user_id: int, limit: int) -> Claim | None:
        """Record one AI analysis unless ``limit`` were made today (one locked transaction); None when used up."""
        return await self._meter.claim(user_id, UsageKind.FEATURE, Quota.AI_PER_DAY, self.day_start(), limit)

    async def usage(self, user: User) -> dict[Quota, int]:
        used = {Quota.AI_PER_DAY: await self._meter.used(user.id, UsageKind.FEATURE, Quota.AI_PER_DAY, self.day_start())}
        for quota, counter in self._counters.items():
            used[quota] = await counter(user.id)
        return used
