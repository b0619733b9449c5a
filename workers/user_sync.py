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
from typing import Any

from redis.asyncio import Redis

from domain.users import UserService
from workers.pubsub import follow

log = logging.getLogger(__name__)

CHANNEL = "users:changed"


class UserCacheSync:
    def __init__(self, redis: Redis, users: UserService) -> None:
        self._redis = redis
        self._users = users
        self._me = secrets.token_hex(4)
        self._pending: set[asyncio.Task[Any]] = set()
        self.subscribed = asyncio.Event()
        self.dropped = 0
        users.on_change.append(self.publish)

    def publish(self, user_id: int) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._send(user_id))
        except RuntimeError:  # no loop: nothing is serving users
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, user_id: int) -> None:
        try:
            await self._redis.publish(CHANNEL, f"{self._me}:{user_id}")
        except Exception:  # the others' entries expire within the cache TTL anyway
            log.warning("user change not published (Redis unavailable)", exc_info=True)

    async def published(self) -> None:
        """Wait until every change so far went out (tests, shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

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
