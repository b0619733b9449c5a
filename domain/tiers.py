"""Subscription tiers as data.

The ``tiers`` table (seeded by the first migration) is the single source of
prices, rate limits, quotas and feature flags. At start-up it is loaded into an
immutable :class:`TierCatalog`; everything that gates or meters reads that.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum


class Feature(StrEnum):
    """Feature flags a tier may carry. Commands and services gate on these."""

    DEMO_TRADING = "demo_trading"
    CHARTS = "charts"
    PRICE_ALERTS = "price_alerts"
    SIGNALS_DIGEST = "signals_digest"
    LIVE_TRADING = "live_trading"
    ANALYTICS = "analytics"
    PRIORITY_SUPPORT = "priority_support"
    AUTO_TRADING = "auto_trading"
    ALL_AGENTS = "all_agents"
    REALTIME_SIGNALS = "realtime_signals"
    DASHBOARDS = "dashboards"
    WEB_APP = "web_app"
    MULTI_ACCOUNT = "multi_account"


class Quota(StrEnum):
    """Countable limits; the value is also the usage-event name that meters it."""

    ALERTS = "alerts"
    AI_PER_DAY = "ai_analysis"
    WATCHLIST = "watchlist"


@dataclass(frozen=True, slots=True)
class Tier:
    code: str
    rank: int
    price_cents: int  # per month, USD
    price_stars: int  # per 30 days, Telegram Stars
    rate_per_minute: int  # sustained requests per minute
    burst: int  # token-bucket capacity
    quotas: dict[Quota, int] = field(hash=False)
    features: frozenset[Feature] = frozenset()

    def has(self, feature: Feature) -> bool:
        return feature in self.features

    def quota(self, quota: Quota) -> int:
        return self.quotas.get(quota, 0)

    @property
    def is_paid(self) -> bool:
        return self.price_cents > 0


FREE = "free"


class TierCatalog:
    """The tiers ordered by rank; lookups by code and 'cheapest tier with X'."""

    def __init__(self, tiers: Iterable[Tier]) -> None:
        self._tiers = tuple(sorted(tiers, key=lambda t: t.rank))
        self._by_code = {t.code: t for t in self._tiers}
        if FREE not in self._by_code:
            raise ValueError("the tier catalog must contain the 'free' tier")

    def __iter__(self) -> Iterator[Tier]:
        return iter(self._tiers)

    def __len__(self) -> int:
        return len(self._tiers)

    def get(self, code: str) -> Tier:
        """The tier with this code; unknown codes fall back to free (never crash a user)."""
        return self._by_code.get(code) or self._by_code[FREE]

    def __contains__(self, code: object) -> bool:
        return code in self._by_code

    @property
    def free(self) -> Tier:
        return self._by_code[FREE]

    def allows(self, tier: Tier, *, min_tier: str | None, feature: Feature | None) -> bool:
        if min_tier is not None and tier.rank < self.get(min_tier).rank:
            return False
        return feature is None or tier.has(feature)

    def required_for(self, *, min_tier: str | None, feature: Feature | None) -> Tier | None:
        """The cheapest tier satisfying both requirements."""
        floor = self.get(min_tier).rank if min_tier else -1
        return next(
            (t for t in self._tiers if t.rank >= floor and (feature is None or feature in t.features)),
            None,
        )
