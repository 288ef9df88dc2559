"""RedisBackend against a fake client: MGET / pipelined SET EX, failures absorbed, the breaker
short-circuiting a dead Redis, the probe bringing the cache back, metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from app.repository.manifest import ImageSpec, Manifest
from app.serving.cache.breaker import BreakerState
from app.serving.cache.memory import LatentCache
from app.serving.cache.redis_cache import RedisBackend

MANIFEST = Manifest(
    name="m", version=1, latent_dim=4, image=ImageSpec(height=4, width=4, channels=1),
    likelihood="bernoulli", created_at="2026-11-29T00:00:00+00:00",
    files={"encoder.onnx": "e" * 64},
)  # fmt: skip


class FakePipeline:
    """Buffers SETs like redis.asyncio's pipeline and applies them on execute()."""

    def __init__(self, client: FakeRedis) -> None:
        self.client = client
        self.commands: list[tuple[str, bytes, int | None]] = []

    async def __aenter__(self) -> FakePipeline:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.commands.clear()

    def set(self, key: str, value: bytes, ex: int | None = None) -> FakePipeline:
        self.commands.append((key, value, ex))
        return self

    async def execute(self) -> list[bool]:
        await self.client.behave("pipeline")
        for key, value, ex in self.commands:
            self.client.data[key] = value
            self.client.ttls[key] = ex
        return [True] * len(self.commands)


class FakeRedis:
    """The part of redis.asyncio.Redis the backend uses; `mode` makes it fail or hang."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.ttls: dict[str, int | None] = {}
        self.mode = "ok"
        self.calls: list[str] = []
        self.closed = False

    async def behave(self, command: str) -> None:
        self.calls.append(command)
        if self.mode == "error":
            raise RedisConnectionError("Connection refused")
        if self.mode == "hang":
            await asyncio.sleep(30)

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        await self.behave("mget")
        return [self.data.get(key) for key in keys]

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        assert transaction is False
        return FakePipeline(self)

    async def ping(self) -> bool:
        await self.behave("ping")
        return True

    async def aclose(self) -> None:
        self.closed = True


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name, {"backend": "redis"}) or 0.0


def backend_with(fake: FakeRedis, **kwargs: Any) -> RedisBackend:
    options: dict[str, Any] = {"timeout_s": 0.05, "failure_threshold": 2, "reset_timeout_s": 0.1}
    return RedisBackend("redis://fake", client=fake, **(options | kwargs))


Scenario = Callable[[FakeRedis, RedisBackend], Coroutine[Any, Any, None]]


def over_fake_redis(**options: Any) -> Callable[[Scenario], Callable[[], None]]:
    """Makes an async scenario a test: it runs against a fresh FakeRedis and a RedisBackend over it
    (`backend_with(fake, **options)`), and the backend is closed afterwards whatever happens."""

    def decorate(scenario: Scenario) -> Callable[[], None]:
        async def run() -> None:
            fake = FakeRedis()
            backend = backend_with(fake, **options)
            try:
                await scenario(fake, backend)
            finally:
                await backend.close()

        def test() -> None:
            asyncio.run(run())

        test.__doc__ = scenario.__doc__
        return test

    return decorate


async def fail_twice(fake: FakeRedis, backend: RedisBackend) -> None:
    """Redis refuses two lookups in a row: the breaker (threshold 2) opens."""
    fake.mode = "error"
    await backend.get_many(["a"])
    await backend.get_many(["a"])


@over_fake_redis()
async def test_set_many_pipelines_set_ex_and_get_many_is_one_mget(
    fake: FakeRedis, backend: RedisBackend
) -> None:
    await backend.set_many({"a": b"1", "b": b"2"}, ttl_seconds=60)
    assert fake.data == {"a": b"1", "b": b"2"}
    assert fake.ttls == {"a": 60, "b": 60}
    assert await backend.get_many(["a", "x", "b"]) == [b"1", None, b"2"]
    assert fake.calls == ["pipeline", "mget"]
    assert await backend.get_many([]) == []
    await backend.set_many({}, 60)
    assert fake.calls == ["pipeline", "mget"]  # nothing to do: no round trip
    assert backend.status() == "ok"
    await backend.close()
    assert fake.closed


@over_fake_redis(reset_timeout_s=60)
async def test_failures_become_misses_and_open_the_breaker(
    fake: FakeRedis, backend: RedisBackend
) -> None:
    errors = metric("vae_cache_errors_total")
    fake.mode = "error"
    assert await backend.get_many(["a", "b"]) == [None, None]
    await backend.set_many({"a": b"1"}, 60)  # never raises
    assert backend.breaker.state is BreakerState.OPEN
    assert backend.status() == "degraded"
    assert metric("vae_cache_up") == 0.0
    assert metric("vae_cache_errors_total") == errors + 2
    touched = len(fake.calls)
    for _ in range(20):  # open: Redis is not touched at all
        assert await backend.get_many(["a"]) == [None]
        await backend.set_many({"a": b"1"}, 60)
    assert len(fake.calls) == touched
    assert metric("vae_cache_errors_total") == errors + 2


@over_fake_redis(timeout_s=0.05, reset_timeout_s=60)
async def test_a_hanging_redis_costs_at_most_the_call_timeout(
    fake: FakeRedis, backend: RedisBackend
) -> None:
    fake.mode = "hang"
    started = time.monotonic()
    assert await backend.get_many(["a"]) == [None]
    await backend.set_many({"a": b"1"}, 60)
    first_two = time.monotonic() - started
    assert first_two < 1.0  # 2 x 0.1 s bounds, with slack for a busy machine
    started = time.monotonic()
    assert await backend.get_many(["a"]) == [None]  # breaker open now: instant
    assert time.monotonic() - started < 0.05


@over_fake_redis(reset_timeout_s=0.05)
async def test_the_probe_brings_the_cache_back_without_any_request(
    fake: FakeRedis, backend: RedisBackend
) -> None:
    await fail_twice(fake, backend)
    assert backend.status() == "degraded"
    await asyncio.sleep(0.2)
    assert backend.status() == "degraded"  # probes keep failing while Redis is down
    assert "ping" in fake.calls
    fake.mode = "ok"
    deadline = time.monotonic() + 3
    while backend.status() != "ok" and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert backend.status() == "ok"
    assert metric("vae_cache_up") == 1.0
    await backend.set_many({"a": b"1"}, 60)
    assert await backend.get_many(["a"]) == [b"1"]


@over_fake_redis(reset_timeout_s=0.05)
async def test_a_request_may_be_the_half_open_trial(fake: FakeRedis, backend: RedisBackend) -> None:
    await fail_twice(fake, backend)
    fake.mode = "ok"
    fake.data["a"] = b"1"
    await asyncio.sleep(0.06)
    # whichever comes first, the probe or this lookup, closes the breaker
    values = await backend.get_many(["a"])
    if values == [None]:  # the probe held the trial at that moment
        await asyncio.sleep(0.1)
        values = await backend.get_many(["a"])
    assert values == [b"1"]
    assert backend.status() == "ok"


@over_fake_redis(timeout_s=5.0)
async def test_a_cancelled_call_does_not_count_against_redis(
    fake: FakeRedis, backend: RedisBackend
) -> None:
    fake.mode = "hang"
    task = asyncio.create_task(backend.get_many(["a"]))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert backend.breaker.consecutive_failures == 0
    assert backend.status() == "ok"


@over_fake_redis(reset_timeout_s=0.05)
async def test_close_stops_the_probe_and_later_calls_are_misses(
    fake: FakeRedis, backend: RedisBackend
) -> None:
    await fail_twice(fake, backend)
    assert backend._probe is not None
    await backend.close()
    assert backend._probe is None
    fake.mode = "ok"
    calls = len(fake.calls)
    assert await backend.get_many(["a"]) == [None]
    await asyncio.sleep(0.1)
    assert len(fake.calls) == calls


@over_fake_redis()
async def test_latent_cache_round_trips_float32_rows_through_redis(
    fake: FakeRedis, backend: RedisBackend
) -> None:
    cache = LatentCache(backend, ttl_seconds=30)
    keys = [LatentCache.key(MANIFEST, "d0"), LatentCache.key(MANIFEST, "d1")]
    mu = np.arange(8, dtype=np.float32).reshape(2, 4)
    logvar = -mu
    hits = metric("vae_cache_hits_total")
    misses = metric("vae_cache_misses_total")
    assert await cache.lookup(keys, 4) == [None, None]
    await cache.store(keys, mu, logvar)
    assert all(len(v) == 8 * 4 for v in fake.data.values())
    assert set(fake.ttls.values()) == {30}
    other_version = MANIFEST.model_copy(update={"version": 2})
    found = await cache.lookup([*keys, LatentCache.key(other_version, "d0")], 4)
    assert found[2] is None  # another version never reads these latents
    for row, entry in enumerate(found[:2]):
        assert entry is not None
        np.testing.assert_array_equal(entry[0], mu[row])
        np.testing.assert_array_equal(entry[1], logvar[row])
    assert metric("vae_cache_hits_total") == hits + 2
    assert metric("vae_cache_misses_total") == misses + 3
