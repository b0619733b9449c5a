"""Redis pub/sub change notices between processes: :class:`Publisher` sends, :func:`follow` listens.

Pub/sub is fire-and-forget: a message published while a follower was
disconnected is lost. So after every re-subscription ``resync`` runs and
brings the follower back in line from the source of truth (the database, or
by dropping a cache), and a follower never stops on a Redis failure: it
resubscribes with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

log = logging.getLogger(__name__)


class Publisher:
    """Publishes on ``channel`` from synchronous code, without waiting (a failure is logged: the
    followers' ``resync`` covers what they miss)."""

    def __init__(self, redis: Redis, channel: str) -> None:
        self._redis, self.channel = redis, channel
        self._pending: set[asyncio.Task[Any]] = set()

    def publish(self, message: str) -> None:
        try:
            task = asyncio.get_running_loop().create_task(self._send(message))
        except RuntimeError:  # no running loop: nothing is serving, nothing to tell
            return
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, message: str) -> None:
        try:
            await self._redis.publish(self.channel, message)
        except Exception:
            log.warning("%s: change not published (Redis unavailable)", self.channel, exc_info=True)

    async def published(self) -> None:
        """Wait until every message so far went out (tests, shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


async def follow(
    redis: Redis,
    channel: str,
    handle: Callable[[bytes | str], Awaitable[None]],
    resync: Callable[[], Awaitable[None]],
    *,
    subscribed: asyncio.Event | None = None,
    retry: float = 1.0,
    max_retry: float = 30.0,
) -> None:
    """Call ``handle`` with each message on ``channel``; ``resync`` after each re-subscription."""
    delay, first = retry, True
    while True:
        try:
            pubsub = redis.pubsub()
            try:
                await pubsub.subscribe(channel)
                if not first:
                    await resync()
                first = False
                if subscribed is not None:
                    subscribed.set()
                delay = retry
                while True:
                    # get_message with a timeout, not listen(): redis-py can swallow a cancellation
                    # that lands in a blocking pub/sub read, so look at our own state every second.
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise asyncio.CancelledError
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        await handle(message["data"])
            finally:
                if subscribed is not None:
                    subscribed.clear()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.warning("%s: Redis unavailable, resubscribing in %.0fs", channel, delay, exc_info=True)
            first = False
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_retry)
