"""RedisBackend: the latent cache in Redis, shared by every API replica.

A cache must never make a request fail or wait long, so every call is bounded (tight socket
timeouts plus an overall deadline), never raises, and goes through a circuit breaker: after a few
consecutive failures Redis is left alone for a cool-down and lookups are plain misses. While the
breaker is open a background probe PINGs Redis once a cool-down, so the cache comes back on its
own when Redis does, with or without traffic. Values are raw bytes (the caller's float32 rows),
written with SET ... EX in one pipeline and read with one MGET.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from app import metrics
from app.serving.cache.breaker import BreakerState, CircuitBreaker

logger = logging.getLogger(__name__)
T = TypeVar("T")


class _Skipped:
    """Marks a call that did not reach Redis (breaker open) or failed."""


_SKIPPED: Final = _Skipped()


def make_client(
    url: str, timeout_s: float, max_connections: int, health_check_interval_s: int
) -> Any:
    """A redis.asyncio client on a blocking connection pool with tight timeouts.

    One retry, on connection errors only: a pooled connection that went stale when Redis
    restarted is replaced at once instead of failing the call. Timeouts are not retried.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,  # waiting for a free pooled connection
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_keepalive=True,
        health_check_interval=health_check_interval_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        retry_on_timeout=False,
    )
    return aioredis.Redis(connection_pool=pool)


class RedisBackend:
    """CacheBackend on Redis behind a circuit breaker. Never raises into a request."""

    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.1,
        failure_threshold: int = 3,
        reset_timeout_s: float = 2.0,
        max_connections: int = 64,
        health_check_interval_s: int = 15,
        client: Any | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        self.url = url
        # connect (or a stale connection's reconnect) plus one command, then give up
        self.call_timeout_s = 2 * timeout_s
        self._client = (
            client
            if client is not None
            else make_client(url, timeout_s, max_connections, health_check_interval_s)
        )
        self.breaker = breaker or CircuitBreaker(failure_threshold, reset_timeout_s)
        self.breaker.on_change = self._on_breaker_change
        self._probe: asyncio.Task[None] | None = None
        self._closed = False
        metrics.CACHE_UP.labels(self.name).set(1)

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """One MGET; all misses when Redis is unavailable."""
        if not keys:
            return []
        values = await self._call(lambda: self._client.mget(keys))
        if isinstance(values, _Skipped) or len(values) != len(keys):
            return [None] * len(keys)
        return [v if isinstance(v, bytes) else None for v in values]

    async def set_many(self, items: dict[str, bytes], ttl_seconds: int) -> None:
        """SET key value EX ttl for every item, in one pipeline round trip."""
        if items:
            await self._call(lambda: self._set_pipeline(items, ttl_seconds))

    async def _set_pipeline(self, items: dict[str, bytes], ttl_seconds: int) -> list[Any]:
        async with self._client.pipeline(transaction=False) as pipe:
            for key, value in items.items():
                pipe.set(key, value, ex=ttl_seconds)
            result: list[Any] = await pipe.execute()
            return result

    async def ping(self) -> bool:
        """True when Redis answers a PING now (through the breaker)."""
        return not isinstance(await self._call(lambda: self._client.ping()), _Skipped)

    def status(self) -> str:
        """'ok' while the breaker is closed, 'degraded' while requests go without the cache."""
        return "ok" if self.breaker.state is BreakerState.CLOSED else "degraded"

    async def close(self) -> None:
        """Stops the probe and closes the connection pool."""
        self._closed = True
        if self._probe is not None:
            self._probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe
            self._probe = None
        with contextlib.suppress(Exception):
            await self._client.aclose()

    async def _call(self, operation: Callable[[], Awaitable[T]]) -> T | _Skipped:
        """Runs one Redis operation through the breaker, bounded in time; failures become
        _SKIPPED (counted, never raised)."""
        if self._closed or not self.breaker.allow():
            return _SKIPPED
        try:
            async with asyncio.timeout(self.call_timeout_s):
                result = await operation()
        except asyncio.CancelledError:
            self.breaker.release()  # the caller went away: no verdict on Redis
            raise
        except Exception as error:  # any failure of the cache is a miss
            metrics.CACHE_ERRORS.labels(self.name).inc()
            logger.debug("redis cache call failed: %r", error)
            self.breaker.record_failure()
            return _SKIPPED
        self.breaker.record_success()
        return result

    def _on_breaker_change(self, state: BreakerState) -> None:
        if state is BreakerState.OPEN:
            metrics.CACHE_UP.labels(self.name).set(0)
            if self._probe is None or self._probe.done():
                logger.warning(
                    "redis cache at %s is failing; answering without it, retrying every %.1fs",
                    self.url, self.breaker.reset_timeout_s,
                )  # fmt: skip
                self._start_probe()
        elif state is BreakerState.CLOSED:
            metrics.CACHE_UP.labels(self.name).set(1)
            logger.info("redis cache at %s is back", self.url)

    def _start_probe(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): requests will do the trials
            return
        if not self._closed:
            self._probe = loop.create_task(self._probe_until_closed(), name="redis-cache-probe")

    async def _probe_until_closed(self) -> None:
        """Drops the pooled connections (they are likely dead), then PINGs once per cool-down
        until the breaker closes."""
        with contextlib.suppress(Exception):
            await self._client.connection_pool.disconnect()
        while not self._closed and self.breaker.state is not BreakerState.CLOSED:
            await asyncio.sleep(max(self.breaker.seconds_until_trial(), 0.05))
            await self.ping()
