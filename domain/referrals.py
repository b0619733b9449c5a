"""Referral attribution from ``/start ref_<code>`` deep links.

First touch only: a user is attributed once, on the update that created them,
never to themselves. Rewards are granted by billing on the referee's first
payment, and taken back when that payment is refunded.
"""

from __future__ import annotations

import re
from typing import Protocol

from domain.audit import AuditEntry, AuditRepository, Surface
from domain.billing.model import ReferralStats
from domain.users import User, UserRepository, UserService

PAYLOAD = re.compile(r"^ref_([a-z0-9]{4,16})$")


class ReferralUnit(Protocol):
    @property
    def users(self) -> UserRepository: ...
    @property
    def audit(self) -> AuditRepository: ...
    async def commit(self) -> None: ...


def referral_code(payload: str | None) -> str | None:
    match = PAYLOAD.match((payload or "").strip().lower())
    return match.group(1) if match else None


class RewardCounts(Protocol):
    async def referral_counts(self, referrer_id: int) -> tuple[int, int, int, int]: ...


class StatsUnit(Protocol):
    @property
    def billing(self) -> RewardCounts: ...


class ReferralService:
    def __init__(self, users: UserService) -> None:
        self._users = users

    async def attribute(self, uow: ReferralUnit, user: User, payload: str | None, *, new_user: bool) -> User:
        """Record who referred a brand-new user; anything else leaves the user unchanged."""
        code = referral_code(payload)
        if code is None or not new_user or user.referred_by is not None:
            return user
        referrer = await uow.users.by_referral_code(code)
        if referrer is None or referrer.id == user.id:
            return user
        updated = await uow.users.update(user.id, referred_by=referrer.id)
        await uow.audit.append(
            AuditEntry("referral.attributed", user.id, user.id, Surface.CHAT, {"referrer_id": referrer.id})
        )
        await uow.commit()
        self._users.remember(updated)
        return updated

    async def stats(self, uow: StatsUnit, user: User) -> ReferralStats:
        """Who this user brought: invited, converted (paid at least once, not refunded), reward days earned,
        still pending (a refunded referee is not: their reward is never earned again)."""
        invited, converted, days, refunded = await uow.billing.referral_counts(user.id)
        return ReferralStats(user.referral_code, invited, converted, days, max(0, invited - converted - refunded))
