"""Profile changes reach every process's user cache (several replicas on Redis).

A write through ``UserService`` (language, time zone, tier from billing, role
or block from staff, erasure) publishes the user's id on ``users:changed``;
every process drops that profile from its cache, so its next update reads the
row. A process that lost its subscription drops its whole cache once it is
back: whatever it missed, it reads again.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from redis.asyncio import Redis

from domain.users import UserService
from workers.pubsub import Publisher, follow

log = logging.getLogger(__name__)

CHANNEL = "users:changed"


class UserCacheSync:
    def __init__(self, redis: Redis, users: UserService) -> None:
        self._redis = redis
        self._users = users
        self._me = secrets.token_hex(4)
        self._out = Publisher(redis, CHANNEL)  # a missed notice costs at most the cache TTL
        self.subscribed = asyncio.Event()
        self.dropped = 0
        users.on_change.append(self.publish)

    def publish(self, user_id: int) -> None:
        self._out.publish(f"{self._me}:{user_id}")

    async def published(self) -> None:
        """Wait until every change so far went out (tests, shutdown)."""
        await self._out.published()

    async def run(self) -> None:
        await follow(self._redis, CHANNEL, self.apply, self._drop_all, subscribed=self.subscribed)

    async def apply(self, raw: bytes | str) -> None:
        text = raw.decode() if isinstance(raw, bytes) else raw
        sender, _, user_id = text.partition(":")
        if sender == self._me:
            return
        try:
            self._users.drop_cached(int(user_id))
        except ValueError:
            log.warning("user changes: ignoring a malformed message")
            return
        self.dropped += 1

    async def _drop_all(self) -> None:
        self._users.drop_cached()
