"""MemoryBackend (LRU with expiry) and LatentCache keys: format-independent, scoped to the
version and its encoder's weights."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client import REGISTRY

from app.repository.manifest import ImageSpec, Manifest
from app.serving.cache import memory as cache_module
from app.serving.cache.memory import LatentCache, MemoryBackend, pixel_digest


def test_memory_backend_returns_what_was_stored_until_it_expires(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [1000.0]
    monkeypatch.setattr(cache_module, "time", SimpleNamespace(monotonic=lambda: now[0]))
    backend = MemoryBackend(max_entries=10)

    async def scenario() -> None:
        await backend.set_many({"a": b"1", "b": b"2"}, ttl_seconds=5)
        assert await backend.get_many(["a", "b", "c"]) == [b"1", b"2", None]
        now[0] += 4.9
        assert await backend.get_many(["a"]) == [b"1"]
        now[0] += 0.1
        assert await backend.get_many(["a", "b"]) == [None, None]

    asyncio.run(scenario())


def test_memory_backend_evicts_the_least_recently_used() -> None:
    backend = MemoryBackend(max_entries=2)

    async def scenario() -> None:
        await backend.set_many({"a": b"1", "b": b"2"}, 60)
        assert await backend.get_many(["a"]) == [b"1"]  # a is now the most recent
        await backend.set_many({"c": b"3"}, 60)
        assert await backend.get_many(["a", "b", "c"]) == [b"1", None, b"3"]
        assert backend.status() == "ok"

    asyncio.run(scenario())


def test_memory_backend_with_no_room_is_disabled() -> None:
    backend = MemoryBackend(max_entries=0)

    async def scenario() -> None:
        await backend.set_many({"a": b"1"}, 60)
        assert await backend.get_many(["a"]) == [None]

    asyncio.run(scenario())
    assert backend.status() == "disabled"
    assert REGISTRY.get_sample_value("vae_cache_up", {"backend": "memory"}) == 0
    MemoryBackend(max_entries=1)
    assert REGISTRY.get_sample_value("vae_cache_up", {"backend": "memory"}) == 1


def test_the_same_pixels_give_the_same_digest_whatever_their_dtype() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (1, 28, 28)).astype(np.float32) / 255
    assert pixel_digest(pixels) == pixel_digest(pixels.astype(np.float64))
    assert pixel_digest(pixels) != pixel_digest(pixels.reshape(1, 14, 56))  # shape is part of it
    changed = pixels.copy()
    changed[0, 0, 0] += 1 / 255
    assert pixel_digest(pixels) != pixel_digest(changed)


def _manifest(name: str, version: int, encoder: str = "e" * 64) -> Manifest:
    return Manifest(
        name=name, version=version, latent_dim=2, image=ImageSpec(height=4, width=4, channels=1),
        likelihood="bernoulli", created_at="2026-11-29T00:00:00+00:00",
        files={"encoder.onnx": encoder},
    )  # fmt: skip


def test_keys_are_scoped_to_model_version_and_encoder_weights() -> None:
    keys = {
        LatentCache.key(_manifest("mnist", 1), "d"),
        LatentCache.key(_manifest("mnist", 2), "d"),
        LatentCache.key(_manifest("fashion", 1), "d"),
        # another repository's mnist:1 (a Redis shared by two deployments, or a wiped repository)
        LatentCache.key(_manifest("mnist", 1, encoder="f" * 64), "d"),
    }
    assert len(keys) == 4


def test_latent_cache_ignores_values_of_the_wrong_size() -> None:
    cache = LatentCache(MemoryBackend(10), ttl_seconds=60)

    async def scenario() -> None:
        await cache.backend.set_many({"k": b"\x00" * 12}, 60)
        assert await cache.lookup(["k"], latent_dim=4) == [None]

    asyncio.run(scenario())
