"""Following a Redis pub/sub channel for as long as the process lives.

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

from redis.asyncio import Redis

log = logging.getLogger(__name__)


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
