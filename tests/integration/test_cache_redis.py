"""The latent cache in a real redis-server, through a real `vae serve` over HTTP.

Hit after miss, TTL, version isolation, one entry whatever the image's format, /interpolate
sharing the cache, and Redis killed, stalled and restarted under load: every request answered,
health "degraded" for the cache (never "down" for the service), the cache back on its own.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from app.repository.store import ModelRepository
from app.serving.cache.memory import LatentCache, pixel_digest
from app.serving.imaging import canonical_pixels
from tests.support.dataset_builders import png_b64
from tests.support.load import BackgroundLoad
from tests.support.paths import SHIPPED_MODELS
from tests.support.processes import (
    RedisServer,
    ServiceProcess,
    redis_running,
    running_service,
    start_redis,
    wait_until,
)

NPY = "application/x-npy"
KEY_PREFIX = "vae:latent:"
QUICK_BREAKER = {"VAE_CACHE_BREAKER_RESET_S": "1"}  # an open breaker tries Redis again after 1 s


# ---- helpers -----------------------------------------------------------------------------
def as_array(digit: np.ndarray) -> list[Any]:
    """One uint8 digit as the JSON array a client would send: floats in [0, 1]."""
    return (digit.astype(np.float64) / 255.0).tolist()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def encode(client: httpx.Client, digits: np.ndarray, model: str | None = None) -> dict[str, Any]:
    """POST /encode with base64 PNGs; the JSON reply (asserting 200)."""
    body: dict[str, Any] = {"images": [png_b64(d) for d in digits]}
    if model is not None:
        body["model"] = model
    reply = client.post("/encode", json=body)
    assert reply.status_code == 200, reply.text
    result: dict[str, Any] = reply.json()
    return result


def cached_flags(reply: dict[str, Any]) -> list[bool]:
    return [entry["cached"] for entry in reply["latents"]]


def sample_value(client: httpx.Client, name: str, labels: dict[str, str]) -> float:
    """One sample of GET /metrics (0 when absent)."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def cache_status(client: httpx.Client) -> str:
    reply = client.get("/v2/health/ready")
    assert reply.status_code == 200, reply.text  # the service stays ready whatever Redis does
    status: str = reply.json()["cache"]
    return status


def latent_keys(store: redis.Redis, model: str = "mnist", version: int | None = None) -> set[str]:
    pattern = f"{KEY_PREFIX}{model}:{'*' if version is None else version}:*"
    return {key.decode() for key in store.scan_iter(match=pattern, count=1000)}


def entry_key(digit: np.ndarray, version: int, model: str = "mnist") -> str:
    """The cache key the service uses for a uint8 digit (pixels as a PNG decodes them). Every
    version in these tests is a copy of the shipped mnist: the same encoder, so the same hash."""
    pixels = canonical_pixels(digit.astype(np.float32)[None, None] / np.float32(255.0))
    shipped = ModelRepository(SHIPPED_MODELS).manifest("mnist", 1)
    manifest = shipped.model_copy(update={"name": model, "version": version})
    return LatentCache.key(manifest, pixel_digest(pixels[0]))


def miss_then_hit(http: httpx.Client, digits: np.ndarray, model: str | None = None) -> None:
    """Encodes `digits` twice: a miss for each the first time, a hit the second."""
    assert cached_flags(encode(http, digits, model)) == [False] * len(digits)
    assert cached_flags(encode(http, digits, model)) == [True] * len(digits)


def service_env(redis_url: str, models_dir: Path, **extra: str) -> dict[str, str]:
    return {"VAE_REDIS_URL": redis_url, "VAE_MODELS_DIR": str(models_dir), **extra}


@contextlib.contextmanager
def serving(
    redis: RedisServer, models_dir: Path, log_dir: Path, **settings: str
) -> Iterator[tuple[ServiceProcess, httpx.Client]]:
    """A `vae serve` of the test's own with its latent cache in `redis` (and more VAE_ `settings`),
    and a client of it."""
    env = service_env(redis.url, models_dir, **settings)
    with running_service(env, log_dir) as service, service.client() as http:
        yield service, http


OwnService = Callable[..., contextlib.AbstractContextManager[tuple[ServiceProcess, httpx.Client]]]


# ---- fixtures ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    """A redis-server for this module's well-behaved scenarios."""
    with redis_running() as server:
        yield server


@pytest.fixture(scope="module")
def store(shared_redis: RedisServer) -> Iterator[redis.Redis]:
    """A plain client to look inside the shared Redis."""
    client = redis.Redis.from_url(shared_redis.url)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def cached_service(
    shared_redis: RedisServer, models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """`vae serve` with the shipped model and the latent cache in Redis."""
    logs = tmp_path_factory.mktemp("cache-logs")
    with running_service(service_env(shared_redis.url, models_dir), logs) as process:
        yield process


@pytest.fixture
def client(cached_service: ServiceProcess) -> Iterator[httpx.Client]:
    with cached_service.client() as http:
        yield http


@pytest.fixture
def own_service(shared_redis: RedisServer, tmp_path: Path) -> OwnService:
    """Starts a `vae serve` of the test's own on the shared Redis:
    `with own_service(models_dir, **settings) as (service, http)`."""
    return functools.partial(serving, shared_redis, log_dir=tmp_path)


@pytest.fixture(scope="module")
def digits(heldout_digits: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Held-out digits; each test takes its own slice so no test sees another's entries."""
    return heldout_digits[0]


# ---- a well-behaved Redis ----------------------------------------------------------------
def test_second_encode_is_a_hit_with_the_same_latents(
    client: httpx.Client, store: redis.Redis, digits: np.ndarray
) -> None:
    batch = digits[0:3]
    first = encode(client, batch)
    assert cached_flags(first) == [False, False, False]
    keys = [entry_key(digit, first["version"]) for digit in batch]
    assert store.exists(*keys) == 3
    dim = len(first["latents"][0]["mu"])
    assert all(store.strlen(key) == 8 * dim for key in keys)  # mu and logvar as raw float32

    second = encode(client, batch)
    assert cached_flags(second) == [True, True, True]
    for miss, hit in zip(first["latents"], second["latents"], strict=True):
        np.testing.assert_allclose(hit["mu"], miss["mu"], rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(hit["sigma"], miss["sigma"], rtol=1e-6, atol=1e-6)
    assert cache_status(client) == "ok"


def test_a_batch_mixes_hits_and_misses_and_repeats_count_once(
    client: httpx.Client, store: redis.Redis, digits: np.ndarray
) -> None:
    encode(client, digits[10:11])
    before = len(latent_keys(store))
    mixed = encode(client, np.stack([digits[10], digits[11], digits[11]]))
    assert cached_flags(mixed) == [True, False, False]
    assert mixed["latents"][1]["mu"] == mixed["latents"][2]["mu"]
    assert len(latent_keys(store)) == before + 1


def test_the_same_image_as_png_array_and_npy_hits_one_entry(
    client: httpx.Client, store: redis.Redis, digits: np.ndarray
) -> None:
    digit = digits[20]
    before = len(latent_keys(store))
    as_png = encode(client, digit[None])
    assert cached_flags(as_png) == [False]

    reply = client.post("/encode", json={"arrays": [as_array(digit)]})
    assert reply.status_code == 200, reply.text
    assert cached_flags(reply.json()) == [True]
    np.testing.assert_allclose(
        reply.json()["latents"][0]["mu"], as_png["latents"][0]["mu"], atol=1e-6
    )

    reply = client.post("/encode", content=npy_bytes(digit[None]), headers={"content-type": NPY})
    assert reply.status_code == 200, reply.text
    assert cached_flags(reply.json()) == [True]
    assert len(latent_keys(store)) == before + 1


def test_interpolate_from_images_shares_the_cache_with_encode(
    client: httpx.Client, store: redis.Redis, digits: np.ndarray
) -> None:
    start, end = digits[30], digits[31]
    hits = sample_value(client, "vae_cache_hits_total", {"backend": "redis"})
    body = {"start": {"image": png_b64(start)}, "end": {"image": png_b64(end)}, "steps": 4}
    reply = client.post("/interpolate", json=body)
    assert reply.status_code == 200, reply.text
    # its images' latents are now cached: /encode hits them
    assert cached_flags(encode(client, np.stack([start, end]))) == [True, True]
    # and a second /interpolate reads them from the cache too
    again = client.post("/interpolate", json=body)
    assert again.status_code == 200, again.text
    np.testing.assert_allclose(again.json()["latents"], reply.json()["latents"], atol=1e-6)
    assert sample_value(client, "vae_cache_hits_total", {"backend": "redis"}) >= hits + 4


def test_entries_carry_the_configured_ttl(
    client: httpx.Client, store: redis.Redis, digits: np.ndarray
) -> None:
    reply = encode(client, digits[40:41])
    ttl = store.ttl(entry_key(digits[40], reply["version"]))
    assert 3600 - 60 <= ttl <= 3600  # the default VAE_CACHE_TTL_S, minus test time


def test_an_expired_entry_is_a_miss_again(
    own_service: OwnService, store: redis.Redis, models_dir: Path, digits: np.ndarray
) -> None:
    with own_service(models_dir, VAE_CACHE_TTL_S="2") as (_, http):
        digit = digits[50:51]
        miss_then_hit(http, digit)
        key = entry_key(digit[0], int(http.get("/v2/models/mnist/ready").json()["version"]))
        assert 0 < store.pttl(key) <= 2000
        wait_until(lambda: not store.exists(key), timeout=10, what="the entry to expire")
        miss_then_hit(http, digit)


def test_a_new_version_never_reads_the_old_versions_latents(
    own_service: OwnService,
    store: redis.Redis,
    models_dir: Path,
    tmp_path: Path,
    digits: np.ndarray,
) -> None:
    own_models = tmp_path / "models"
    shutil.copytree(models_dir, own_models)
    repository = ModelRepository(own_models)
    old = repository.default_version("mnist")
    assert old is not None
    digit = digits[60:61]
    with own_service(own_models) as (_, http):
        miss_then_hit(http, digit)

        # publish a copy of the same weights as a new version: same pixels, new key space
        staging = repository.staging_dir("mnist")
        source = repository.version_dir("mnist", old)
        for path in source.iterdir():
            if path.is_file() and path.name != "manifest.json":
                shutil.copy2(path, staging / path.name)
        new = repository.publish("mnist", staging, repository.manifest("mnist", old))

        def serving_new() -> bool:
            return bool(http.get("/v2/models/mnist/ready").json().get("version") == new)

        wait_until(serving_new, timeout=30, what=f"version {new} to be the default")
        first = encode(http, digit)
        assert first["version"] == new
        assert cached_flags(first) == [False]
        assert cached_flags(encode(http, digit)) == [True]
        assert cached_flags(encode(http, digit, model=f"mnist:{old}")) == [True]
    key_old = entry_key(digit[0], old)
    key_new = entry_key(digit[0], new)
    assert store.exists(key_old) and store.exists(key_new)  # two entries for the same pixels
    assert latent_keys(store, version=new) == {key_new}


# ---- Redis failing -----------------------------------------------------------------------
class Load(BackgroundLoad):
    """Background /encode and /interpolate traffic; remembers every answer's status and the
    slowest answer."""

    def __init__(self, url: str, digits: np.ndarray, threads: int = 2) -> None:
        super().__init__(url, threads)
        self.digits = digits
        self.statuses: list[int] = []
        self.slowest = 0.0

    def send(self, http: httpx.Client, rng: np.random.Generator, turn: int) -> None:
        picks = self.digits[rng.integers(0, len(self.digits), 2)]
        started = time.monotonic()
        if rng.random() < 0.8:
            reply = http.post("/encode", json={"images": [png_b64(d) for d in picks]})
        else:
            start, end = ({"image": png_b64(d)} for d in picks)
            reply = http.post("/interpolate", json={"start": start, "end": end, "steps": 3})
        with self._lock:
            self.statuses.append(reply.status_code)
            self.slowest = max(self.slowest, time.monotonic() - started)


def test_redis_killed_and_restarted_under_load(
    redis_server: RedisServer, models_dir: Path, tmp_path: Path, digits: np.ndarray
) -> None:
    fresh = digits[100:140]
    restarted: RedisServer | None = None
    with serving(redis_server, models_dir, tmp_path, **QUICK_BREAKER) as (service, http):
        try:
            with Load(service.url, digits[70:90]) as load:
                load.wait_for(20)
                assert cache_status(http) == "ok"
                errors = sample_value(http, "vae_cache_errors_total", {"backend": "redis"})

                redis_server.stop()  # SIGKILL, mid-traffic
                load.wait_for(40)
                wait_until(lambda: cache_status(http) == "degraded", 10, what="cache degraded")
                assert sample_value(http, "vae_cache_up", {"backend": "redis"}) == 0.0
                assert sample_value(http, "vae_cache_errors_total", {"backend": "redis"}) > errors
                # requests go on without the cache: misses, answered
                assert cached_flags(encode(http, fresh[0:1])) == [False]
                assert cached_flags(encode(http, fresh[0:1])) == [False]
                load.wait_for(20)

                restarted = start_redis(redis_server.port)  # same address, empty
                wait_until(lambda: cache_status(http) == "ok", 20, what="the cache to come back")
                assert sample_value(http, "vae_cache_up", {"backend": "redis"}) == 1.0
                load.wait_for(20)
            miss_then_hit(http, fresh[1:2])
        finally:
            if restarted is not None:
                restarted.stop()
        assert service.process.poll() is None  # the same process all along
    assert load.failures == []
    assert set(load.statuses) == {200}, {s: load.statuses.count(s) for s in set(load.statuses)}


def test_a_stalled_redis_does_not_stall_requests(
    redis_server: RedisServer, models_dir: Path, tmp_path: Path, digits: np.ndarray
) -> None:
    with serving(redis_server, models_dir, tmp_path, **QUICK_BREAKER) as (service, http):
        assert cached_flags(encode(http, digits[150:151])) == [False]
        os.kill(redis_server.process.pid, signal.SIGSTOP)  # accepts connections, never answers
        try:
            with Load(service.url, digits[150:170]) as load:
                load.wait_for(30)
                assert cache_status(http) == "degraded"
                slowest = load.slowest
        finally:
            os.kill(redis_server.process.pid, signal.SIGCONT)
        # a few requests paid a bounded timeout before the breaker opened; none waited long
        assert slowest < 3.0
        assert set(load.statuses) == {200} and load.failures == []
        wait_until(lambda: cache_status(http) == "ok", 20, what="the cache to come back")
        miss_then_hit(http, digits[171:172])
