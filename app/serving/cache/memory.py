"""LatentCache: encoder results (mu, logvar) keyed by model, version and the decoded pixels.

The key hashes the canonical float32 pixels, so the same image sent as PNG or as an array hits
one entry, and the version is part of the key, so a new version never reads another's latents.
Backends: an in-process LRU (embedded default) and Redis (`app.serving.cache.redis_cache`).
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Protocol

import numpy as np

from app import metrics
from app.arrays import FloatArray
from app.repository.manifest import Manifest


class CacheBackend(Protocol):
    """Where cached latents live. Failures are the backend's to absorb: it returns misses."""

    name: str

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        """Values for keys, None where missing (or when the backend is unavailable)."""
        ...

    async def set_many(self, items: dict[str, bytes], ttl_seconds: int) -> None:
        """Stores values with a time to live; never raises."""
        ...

    def status(self) -> str:
        """'ok', 'degraded' (answering without the cache) or 'disabled'."""
        ...

    async def close(self) -> None:
        """Releases connections."""
        ...


class MemoryBackend:
    """An LRU dictionary with per-entry expiry, for a single process."""

    name = "memory"

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        metrics.CACHE_UP.labels(self.name).set(1 if max_entries > 0 else 0)

    async def get_many(self, keys: list[str]) -> list[bytes | None]:
        now = time.monotonic()
        values: list[bytes | None] = []
        for key in keys:
            entry = self._entries.get(key)
            if entry is None or entry[0] <= now:
                if entry is not None:
                    del self._entries[key]
                values.append(None)
            else:
                self._entries.move_to_end(key)
                values.append(entry[1])
        return values

    async def set_many(self, items: dict[str, bytes], ttl_seconds: int) -> None:
        if self.max_entries <= 0:
            return
        expires = time.monotonic() + ttl_seconds
        for key, value in items.items():
            self._entries[key] = (expires, value)
            self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def status(self) -> str:
        return "ok" if self.max_entries > 0 else "disabled"

    async def close(self) -> None:
        self._entries.clear()


def pixel_digest(image: FloatArray, label: int | None = None) -> str:
    """A short hash of one image's canonical float32 pixels and shape (and its label, for a
    conditional model, whose posterior depends on it)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(image.shape).encode())
    if label is not None:
        digest.update(f"label={label}".encode())
    digest.update(np.ascontiguousarray(image, dtype=np.float32).tobytes())
    return digest.hexdigest()


class LatentCache:
    """Looks up and stores (mu, logvar) for images of one model version."""

    def __init__(self, backend: CacheBackend, ttl_seconds: int) -> None:
        self.backend = backend
        self.ttl_seconds = ttl_seconds

    @staticmethod
    def key(manifest: Manifest, digest: str) -> str:
        """The cache key of an image under a model version. The encoder's hash is in it too: a
        version number is unique within one repository only, and two deployments sharing a
        Redis (or a repository wiped and started over) can each have a `mnist:1`. It is the
        hash of the file the registry read and verified: a loaded version's manifest carries
        the hashes computed as it loaded (`ModelRegistry._verified`), not those it was given."""
        encoder = manifest.files.get("encoder.onnx", "")[:16]
        return f"vae:latent:{manifest.name}:{manifest.version}:{encoder}:{digest}"

    async def lookup(
        self, keys: list[str], latent_dim: int
    ) -> list[tuple[FloatArray, FloatArray] | None]:
        """(mu, logvar) for each key, or None on a miss."""
        values = await self.backend.get_many(keys)
        found: list[tuple[FloatArray, FloatArray] | None] = []
        for value in values:
            if value is None or len(value) != 8 * latent_dim:
                found.append(None)
                continue
            both = np.frombuffer(value, dtype=np.float32)
            found.append((both[:latent_dim], both[latent_dim:]))
        hits = sum(v is not None for v in found)
        metrics.CACHE_HITS.labels(self.backend.name).inc(hits)
        metrics.CACHE_MISSES.labels(self.backend.name).inc(len(found) - hits)
        return found

    async def store(self, keys: list[str], mu: FloatArray, logvar: FloatArray) -> None:
        """Stores each row's (mu, logvar) as raw float32 bytes."""
        items = {
            key: np.concatenate([mu[i], logvar[i]]).astype(np.float32).tobytes()
            for i, key in enumerate(keys)
        }
        await self.backend.set_many(items, self.ttl_seconds)

    def status(self) -> str:
        """The backend's health."""
        return self.backend.status()

    async def close(self) -> None:
        """Closes the backend."""
        await self.backend.close()
