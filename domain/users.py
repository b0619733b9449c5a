"""Users: profile, preferences, roles, and the per-process profile cache.

A user is created on first contact. To keep the hot path free of writes, the
profile is cached for ``CACHE_TTL`` and ``last_seen_at`` is written at most
once per ``SEEN_EVERY``; every write through :class:`UserService` refreshes the
cache, so a user sees their own change at once, and is announced to
``on_change`` listeners: with several processes, workers/user_sync.py drops the
profile from every other process's cache.
"""

from __future__ import annotations

import secrets
import zoneinfo
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from domain.clock import Clock, utcnow
from domain.errors import InvalidInput
from domain.parsing import INT64_MAX, parse_int
from domain.tiers import FREE, Tier, TierCatalog

LANGUAGES = ("en", "ru", "es")
DEFAULT_LANGUAGE = "en"
SEEN_EVERY = timedelta(minutes=1)
CACHE_TTL = timedelta(seconds=30)
CACHE_SIZE = 50_000


class Role(StrEnum):
    USER = "user"
    SUPPORT = "support"
    ADMIN = "admin"


class Notify(StrEnum):
    """Notification switches a user controls in /config."""

    ALERTS = "alerts"
    SIGNALS = "signals"
    DIGEST = "digest"
    NEWS = "news"


DEFAULT_NOTIFICATIONS: dict[str, bool] = {
    Notify.ALERTS: True,
    Notify.SIGNALS: True,
    Notify.DIGEST: True,
    Notify.NEWS: False,
}


@dataclass(frozen=True, slots=True)
class Profile:
    """What Telegram tells us about the user on each update."""

    id: int
    first_name: str
    username: str | None
    language_code: str | None


@dataclass(frozen=True, slots=True)
class User:
    id: int
    first_name: str
    username: str | None
    language: str | None  # explicit choice in /config; wins over Telegram's
    tg_language: str | None
    timezone: str
    role: Role
    tier: str
    tier_expires_at: datetime | None
    referral_code: str
    referred_by: int | None
    notifications: dict[str, bool] = field(hash=False)
    created_at: datetime
    last_seen_at: datetime

    @property
    def locale(self) -> str:
        for lang in (self.language, _base_language(self.tg_language)):
            if lang in LANGUAGES:
                return lang
        return DEFAULT_LANGUAGE

    def effective_tier(self, now: datetime) -> str:
        if self.tier_expires_at is not None and self.tier_expires_at <= now:
            return FREE
        return self.tier

    def joined_recently(self, now: datetime) -> bool:
        """Still greeted as new: a first message's sibling updates may have created the user."""
        return now - self.created_at < SEEN_EVERY

    def wants(self, kind: Notify) -> bool:
        return self.notifications.get(kind, DEFAULT_NOTIFICATIONS[kind])

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.SUPPORT, Role.ADMIN)


def _base_language(code: str | None) -> str | None:
    return code.split("-")[0].lower() if code else None


class UserRepository(Protocol):
    async def get(self, user_id: int) -> User | None: ...
    async def add(self, user: User) -> bool: ...
    async def touch(self, user_id: int, seen_at: datetime, profile: Profile) -> None: ...
    async def update(self, user_id: int, **fields: object) -> User: ...
    async def by_referral_code(self, code: str) -> User | None: ...


class UsersUnit(Protocol):
    """The part of a unit of work the user service needs."""

    @property
    def users(self) -> UserRepository: ...

    async def commit(self) -> None: ...


class _ProfileCache:
    """A bounded LRU of users with a freshness deadline per entry."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._items: OrderedDict[int, tuple[User, datetime]] = OrderedDict()

    def get(self, user_id: int, now: datetime) -> User | None:
        item = self._items.get(user_id)
        if item is None or item[1] <= now:
            return None
        self._items.move_to_end(user_id)
        return item[0]

    def put(self, user: User, now: datetime) -> None:
        self._items[user.id] = (user, now + CACHE_TTL)
        self._items.move_to_end(user.id)
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        # Entries past their deadline are never served: let the least recent ones go now rather than when
        # the LRU fills, so a replica holds the users of the last CACHE_TTL, not the last CACHE_SIZE.
        for _ in range(2):
            oldest = next(iter(self._items.values()))
            if oldest[1] > now:
                break
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)

    def drop(self, user_id: int) -> None:
        self._items.pop(user_id, None)

    def clear(self) -> None:
        self._items.clear()


@dataclass(frozen=True, slots=True)
class Seen:
    user: User
    created: bool


class UserService:
    def __init__(
        self,
        tiers: TierCatalog,
        *,
        admin_ids: frozenset[int] = frozenset(),
        support_ids: frozenset[int] = frozenset(),
        clock: Clock = utcnow,
    ) -> None:
        self._tiers = tiers
        self._admins = admin_ids
        self._support = support_ids
        self._clock = clock
        self._cache = _ProfileCache()
        self.on_change: list[Callable[[int], None]] = []  # told the id of each user written here
        # told each user id (None: everyone) whose cached state must go, here or in another process: caches
        # kept beside the profile (the disclosure gate's) drop with it
        self.on_drop: list[Callable[[int | None], None]] = []

    async def seen(self, uow: UsersUnit, profile: Profile) -> Seen:
        """The user behind an update: created on first contact; last-seen kept fresh cheaply."""
        now = self._clock()
        user = self._cache.get(profile.id, now)
        if user is None:
            user = await uow.users.get(profile.id)
            if user is None:
                fresh = self._new_user(profile, now)
                created = await uow.users.add(fresh)
                await uow.commit()
                if created:
                    self._cache.put(fresh, now)
                    return Seen(fresh, created=True)
                user = await uow.users.get(profile.id)  # a concurrent update created it first
                assert user is not None
        if now - user.last_seen_at >= SEEN_EVERY or _profile_changed(user, profile):
            await uow.users.touch(user.id, now, profile)
            await uow.commit()
            user = replace(
                user,
                last_seen_at=now,
                first_name=profile.first_name,
                username=profile.username,
                tg_language=profile.language_code or user.tg_language,
            )
        self._cache.put(user, now)
        return Seen(user, created=False)

    def cached(self, user_id: int) -> User | None:
        """The cached profile if it is still fresh, without a query (the hot path's early look at a tier)."""
        return self._cache.get(user_id, self._clock())

    def tier_of(self, user: User) -> Tier:
        return self._tiers.get(user.effective_tier(self._clock()))

    async def set_language(self, uow: UsersUnit, user: User, language: str) -> User:
        if language not in LANGUAGES:
            raise InvalidInput("unknown language", value=language)
        return await self._update(uow, user, language=language)

    async def set_timezone(self, uow: UsersUnit, user: User, name: str) -> User:
        return await self._update(uow, user, timezone=parse_timezone(name))

    async def toggle_notification(self, uow: UsersUnit, user: User, name: str) -> User:
        try:
            kind = Notify(name)
        except ValueError:
            raise InvalidInput("unknown notification", value=name[:32]) from None
        notifications = {**DEFAULT_NOTIFICATIONS, **user.notifications}
        notifications[kind] = not notifications[kind]
        return await self._update(uow, user, notifications=notifications)

    async def _update(self, uow: UsersUnit, user: User, **fields: object) -> User:
        updated = await uow.users.update(user.id, **fields)
        await uow.commit()
        self.remember(updated)
        return updated

    def remember(self, user: User) -> None:
        """Cache a user just written by another service."""
        self._cache.put(user, self._clock())
        self._changed(user.id)

    def forget(self, user_id: int) -> None:
        """Drop a cached profile after a change made elsewhere (billing, staff)."""
        self._cache.drop(user_id)
        self._dropped(user_id)
        self._changed(user_id)

    def drop_cached(self, user_id: int | None = None) -> None:
        """Drop a profile (None: all) from this process's cache: another process changed it."""
        if user_id is None:
            self._cache.clear()
        else:
            self._cache.drop(user_id)
        self._dropped(user_id)

    def _dropped(self, user_id: int | None) -> None:
        for listener in self.on_drop:
            listener(user_id)

    def _changed(self, user_id: int) -> None:
        for listener in self.on_change:
            listener(user_id)

    def _new_user(self, profile: Profile, now: datetime) -> User:
        if profile.id in self._admins:
            role = Role.ADMIN
        elif profile.id in self._support:
            role = Role.SUPPORT
        else:
            role = Role.USER
        return User(
            id=profile.id,
            first_name=profile.first_name[:128],
            username=profile.username,
            language=None,
            tg_language=profile.language_code,
            timezone="UTC",
            role=role,
            tier=FREE,
            tier_expires_at=None,
            referral_code=new_referral_code(),
            referred_by=None,
            notifications=dict(DEFAULT_NOTIFICATIONS),
            created_at=now,
            last_seen_at=now,
        )


def _profile_changed(user: User, profile: Profile) -> bool:
    return (
        user.first_name != profile.first_name[:128]
        or user.username != profile.username
        or (profile.language_code is not None and profile.language_code != user.tg_language)
    )


_CODE_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"


def new_referral_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(8))


def parse_timezone(name: str) -> str:
    """An IANA zone name (case-insensitive) or a UTC offset like ``+3`` / ``UTC-5``."""
    text = name.strip()
    if not text or len(text) > 64:
        raise InvalidInput("empty timezone", value=text[:64])
    offset = text.upper().removeprefix("UTC").removeprefix("GMT").strip()
    hours = parse_int(offset, low=-INT64_MAX, high=INT64_MAX) if offset[:1] in ("+", "-") else None
    if hours is not None:
        if -12 <= hours <= 14:
            # POSIX Etc/ zones invert the sign: UTC+3 is Etc/GMT-3.
            return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"
        raise InvalidInput("offset out of range", value=text)
    if text.upper() in ("UTC", "GMT"):
        return "UTC"
    match = _zone_index().get(text.lower().replace(" ", "_"))
    if match is None:
        raise InvalidInput("unknown timezone", value=text)
    return match


_ZONES: dict[str, str] = {}


def _zone_index() -> dict[str, str]:
    if not _ZONES:
        for zone in zoneinfo.available_timezones():
            _ZONES[zone.lower()] = zone
            _ZONES.setdefault(zone.rsplit("/", 1)[-1].lower(), zone)
    return _ZONES
