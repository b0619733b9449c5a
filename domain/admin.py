"""Staff administration: user lookup, tier and role grants, the admin dashboard.

Every grant is audited in the same transaction as the change and drops the
profile cache of the user concerned, so the change shows on their next update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from domain.audit import AuditEntry, AuditRepository, Surface
from domain.clock import Clock, utcnow
from domain.errors import DomainError, InvalidInput
from domain.support.feedback import FeedbackSummary
from domain.support.tickets import Ticket
from domain.tiers import FREE, TierCatalog
from domain.users import Role, User, UserService

MAX_GRANT_DAYS = 3650
RECENT_AUDIT = 10
RECENT_TICKETS = 5
PAYING_STATUSES = ("active", "past_due")
PAYING_RAILS = ("stripe", "stars")
LAPSED_STATUSES = ("canceled", "expired")


class UnknownUser(DomainError):
    """No user matches the id or @username: params: ref."""

    code = "ADM-NO-USER"


class NotAdmin(DomainError):
    code = "ADM-FORBIDDEN"


@dataclass(frozen=True, slots=True)
class SubscriptionLine:
    tier: str
    status: str
    rail: str
    period_end: datetime | None


@dataclass(frozen=True, slots=True)
class UserCard:
    user: User
    effective_tier: str
    blocked: bool
    subscriptions: list[SubscriptionLine] = field(hash=False)
    usage: dict[str, int] = field(hash=False)  # "kind:name" -> total over 30 days
    audit: list[AuditEntry] = field(hash=False)
    tickets: list[Ticket] = field(hash=False)


@dataclass(frozen=True, slots=True)
class PoolFigures:
    """The MT5 terminal pool (one terminal per live account) across the deployment."""

    size: int  # terminals configured
    leased: int  # serving a live account
    free: int
    unhealthy: int  # out of the pool after a terminal was found on the wrong account
    refused: int = 0  # links this process refused because no terminal was free (since start)


@dataclass(frozen=True, slots=True)
class OpsFigures:
    """The operations figures /metrics exports; /status and /admin show the same snapshot."""

    updates: int  # updates handled since this process started
    errors: int  # ErrorDNA reports since this process started
    outbox_depth: int  # proactive messages waiting to be sent
    outbox_lag_s: float | None  # age of the oldest waiting one; None when nothing waits
    tick_rate: float  # ticks per second through the market feed
    gateway_ms: float | None  # MT5 gateway ping; None while it is unreachable
    active_1h: int  # users seen in the last hour
    active_24h: int  # users seen in the last 24 hours
    terminals: PoolFigures | None = None  # the MT5 terminal pool; None on the sim backend
    payments_waiting: int = 0  # Stars payments received and not applied yet (the payment inbox retries them)
    payments_oldest_s: float | None = None  # age of the oldest of them


class OpsSource(Protocol):
    async def figures(self) -> OpsFigures: ...


@dataclass(frozen=True, slots=True)
class Dashboard:
    users_by_tier: dict[str, int] = field(hash=False)
    total_users: int
    new_7d: int
    new_30d: int
    active_7d: int
    active_30d: int
    blocked: int
    mrr_cents: int
    paying: int
    lapsed_30d: int  # paid subscriptions canceled or expired in 30 days
    churn_30d: float | None  # lapsed / (paying + lapsed)
    errors_7d: list[tuple[str, int]] = field(hash=False)
    open_tickets: int
    feedback: FeedbackSummary
    ops: OpsFigures | None = None  # the same figures as /metrics and /status


@dataclass(frozen=True, slots=True)
class Counts:
    by_tier: dict[str, int] = field(hash=False)
    total: int
    new_7d: int
    new_30d: int
    active_7d: int
    active_30d: int
    blocked: int


class AdminRepository(Protocol):
    async def find(self, ref: str) -> tuple[User, bool] | None: ...
    async def subscriptions(self, user_id: int) -> list[SubscriptionLine]: ...
    async def usage(self, user_id: int, since: datetime) -> dict[str, int]: ...
    async def counts(self, now: datetime) -> Counts: ...
    async def paying_by_tier(self) -> dict[str, int]: ...
    async def lapsed_since(self, since: datetime) -> int: ...
    async def errors_since(self, since: datetime, limit: int) -> list[tuple[str, int]]: ...


class AdminUnit(Protocol):
    @property
    def admin(self) -> AdminRepository: ...
    @property
    def audit(self) -> AuditRepository: ...
    @property
    def users(self) -> Any: ...
    @property
    def tickets(self) -> Any: ...
    @property
    def feedback(self) -> Any: ...
    async def commit(self) -> None: ...


def _require(actor: User, role: Role) -> None:
    if actor.role == Role.ADMIN or (role == Role.SUPPORT and actor.role == Role.SUPPORT):
        return
    raise NotAdmin("staff only")


class Grants(Protocol):
    """Where staff grants live (billing): a grant is one subscription among the user's."""

    async def grant(self, uow: Any, user_id: int, tier: str, until: datetime | None) -> None: ...


class AdminService:
    def __init__(
        self,
        users: UserService,
        tiers: TierCatalog,
        grants: Grants,
        clock: Clock = utcnow,
        surface: Surface = Surface.CHAT,
        ops: OpsSource | None = None,
    ) -> None:
        self._ops = ops
        self._users = users
        self._tiers = tiers
        self._grants = grants
        self._clock = clock
        self._surface = surface

    async def _find(self, uow: AdminUnit, ref: str) -> tuple[User, bool]:
        found = await uow.admin.find(ref.strip())
        if found is None:
            raise UnknownUser("no such user", ref=ref.strip()[:40])
        return found

    async def card(self, uow: AdminUnit, staff: User, ref: str) -> UserCard:
        _require(staff, Role.SUPPORT)
        user, blocked = await self._find(uow, ref)
        now = self._clock()
        return UserCard(
            user=user,
            effective_tier=user.effective_tier(now),
            blocked=blocked,
            subscriptions=await uow.admin.subscriptions(user.id),
            usage=await uow.admin.usage(user.id, now - timedelta(days=30)),
            audit=await uow.audit.for_user(user.id, RECENT_AUDIT),
            tickets=await uow.tickets.of_user(user.id, RECENT_TICKETS),
        )

    async def grant_tier(self, uow: AdminUnit, admin: User, ref: str, tier_code: str, days: int) -> User:
        _require(admin, Role.ADMIN)
        code = tier_code.strip().lower()
        if code not in {t.code for t in self._tiers}:
            raise InvalidInput("unknown tier", value=code[:16])
        if not 1 <= days <= MAX_GRANT_DAYS:
            raise InvalidInput("days out of range", value=days)
        target, _blocked = await self._find(uow, ref)
        expires = None if code == FREE else self._clock() + timedelta(days=days)
        # Through billing, so the next payment event weighs the grant instead of overwriting it.
        await self._grants.grant(uow, target.id, code, expires)
        updated = await uow.users.get(target.id)
        await uow.audit.append(
            AuditEntry(
                "tier.granted", admin.id, target.id, self._surface,
                {"tier": code, "days": days, "from": target.tier, "expires": expires.isoformat() if expires else None},
            )
        )  # fmt: skip
        await uow.commit()
        self._users.forget(target.id)
        return updated  # type: ignore[no-any-return]

    async def set_role(self, uow: AdminUnit, admin: User, ref: str, role: str) -> User:
        _require(admin, Role.ADMIN)
        try:
            new = Role(role.strip().lower())
        except ValueError:
            raise InvalidInput("unknown role", value=role[:16]) from None
        target, _blocked = await self._find(uow, ref)
        if target.id == admin.id and new != Role.ADMIN:
            raise InvalidInput("an admin cannot demote themselves", value=role[:16])
        updated = await uow.users.update(target.id, role=new)
        await uow.audit.append(
            AuditEntry("role.granted" if new != Role.USER else "role.revoked", admin.id, target.id, self._surface,
                       {"role": new.value, "from": target.role.value})
        )  # fmt: skip
        await uow.commit()
        self._users.forget(target.id)
        return updated  # type: ignore[no-any-return]

    async def dashboard(self, uow: AdminUnit, admin: User) -> Dashboard:
        _require(admin, Role.ADMIN)
        now = self._clock()
        counts = await uow.admin.counts(now)
        paying = await uow.admin.paying_by_tier()
        mrr = sum(
            self._tiers.get(code).price_cents * n for code, n in paying.items() if code in {t.code for t in self._tiers}
        )
        lapsed = await uow.admin.lapsed_since(now - timedelta(days=30))
        paying_total = sum(paying.values())
        churn = lapsed / (paying_total + lapsed) if paying_total + lapsed else None
        return Dashboard(
            users_by_tier=counts.by_tier,
            total_users=counts.total,
            new_7d=counts.new_7d,
            new_30d=counts.new_30d,
            active_7d=counts.active_7d,
            active_30d=counts.active_30d,
            blocked=counts.blocked,
            mrr_cents=mrr,
            paying=paying_total,
            lapsed_30d=lapsed,
            churn_30d=churn,
            errors_7d=await uow.admin.errors_since(now - timedelta(days=7), 10),
            open_tickets=await uow.tickets.open_count(),
            feedback=await uow.feedback.summary(5),
            ops=await self._ops.figures() if self._ops is not None else None,
        )
