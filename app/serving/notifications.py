"""Announcements of new versions over Redis pub/sub, so api replicas pull the object store at
once instead of at their next poll. Best effort both ways: an announcement nobody hears, or one
sent while Redis is away, costs only the wait for the next poll, which stays the fallback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

import redis
import redis.asyncio as aioredis

logger = logging.getLogger(__name__)
CHANNEL = "vae:models:published"
_MAX_BACKOFF_S = 10.0


def announce(redis_url: str, name: str, version: int) -> bool:
    """Tells the listening replicas that `name:version` was published; False when Redis could
    not be told (they will find it by polling)."""
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.publish(CHANNEL, json.dumps({"name": name, "version": version}))
    except redis.RedisError as error:
        logger.warning("could not announce %s:%d (replicas will poll for it): %s",
                       name, version, error)  # fmt: skip
        return False
    finally:
        client.close()
    return True


async def _heed(on_announcement: Callable[[], Awaitable[None]]) -> None:
    """Acts on one announcement; a failure is logged and the next poll stays the fallback (it
    must not end the listener)."""
    try:
        await on_announcement()
    except Exception:
        logger.exception("acting on an announcement failed; the next poll will try again")


async def listen(redis_url: str, on_announcement: Callable[[], Awaitable[None]]) -> None:
    """Calls `on_announcement` for every announcement until cancelled; while Redis is away it
    reconnects with a growing pause (up to 10 s)."""
    backoff = 0.5
    while True:
        # keepalive and a health check: a half-open connection would otherwise go quiet for ever
        client = aioredis.Redis.from_url(
            redis_url, socket_connect_timeout=2, socket_keepalive=True, health_check_interval=30
        )
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(CHANNEL)
                backoff = 0.5
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await _heed(on_announcement)
        except (redis.RedisError, OSError) as error:
            logger.debug("announcements unavailable, polling only: %s", error)
        finally:
            await client.aclose()
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, _MAX_BACKOFF_S)
