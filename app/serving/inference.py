"""What the endpoints compute: encode through the cache, decode, sample and interpolate.

Every graph call goes through the version's runner (the micro-batcher), so concurrent requests
share ONNX Runtime calls.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.serving.cache import LatentCache, pixel_digest
from app.serving.imaging import canonical_pixels
from app.serving.latents import Method, interpolate, sample_prior
from app.serving.registry import LoadedModel

logger = logging.getLogger(__name__)
FloatArray = NDArray[np.float32]


@dataclass
class Encoded:
    """Encoder results for a batch of images."""

    mu: FloatArray
    logvar: FloatArray
    cached: list[bool]

    @property
    def sigma(self) -> FloatArray:
        """Posterior standard deviations."""
        return np.exp(0.5 * self.logvar).astype(np.float32)


class InferenceService:
    """Encode (cached, deduplicated in flight), decode, sample, interpolate."""

    def __init__(self, cache: LatentCache) -> None:
        self.cache = cache
        self._in_flight: dict[str, asyncio.Future[tuple[FloatArray, FloatArray]]] = {}

    async def encode(
        self, model: LoadedModel, images: FloatArray, deadline: float | None
    ) -> Encoded:
        """(mu, logvar) for images [N,C,H,W]: cache first, then the encoder for the misses.

        Identical images requested at the same moment are encoded once.
        """
        images = canonical_pixels(images)
        dim = model.manifest.latent_dim
        keys = [LatentCache.key(model.name, model.version, pixel_digest(img)) for img in images]
        found = await self.cache.lookup(keys, dim)
        mu = np.empty((len(images), dim), dtype=np.float32)
        logvar = np.empty((len(images), dim), dtype=np.float32)
        cached = [entry is not None for entry in found]
        waits: dict[int, asyncio.Future[tuple[FloatArray, FloatArray]]] = {}
        todo: dict[str, int] = {}  # key -> first index needing it
        for index, (key, entry) in enumerate(zip(keys, found, strict=True)):
            if entry is not None:
                mu[index], logvar[index] = entry
            elif key in self._in_flight:
                waits[index] = self._in_flight[key]
            elif key not in todo:
                todo[key] = index
        if todo:
            await self._encode_misses(model, images, keys, todo, mu, logvar, deadline)
        for index, key in enumerate(keys):
            if not cached[index] and index not in waits and key in todo and todo[key] != index:
                mu[index], logvar[index] = mu[todo[key]], logvar[todo[key]]
        for index, future in waits.items():
            mu[index], logvar[index] = await asyncio.shield(future)
        return Encoded(mu, logvar, cached)

    async def _encode_misses(
        self,
        model: LoadedModel,
        images: FloatArray,
        keys: list[str],
        todo: dict[str, int],
        mu: FloatArray,
        logvar: FloatArray,
        deadline: float | None,
    ) -> None:
        loop = asyncio.get_running_loop()
        futures = {key: loop.create_future() for key in todo}
        self._in_flight.update(futures)
        rows = list(todo.values())
        try:
            out = await model.encode_runner.submit(images[rows], deadline)
            for position, (key, index) in enumerate(todo.items()):
                mu[index], logvar[index] = out["mu"][position], out["logvar"][position]
                futures[key].set_result((out["mu"][position], out["logvar"][position]))
            await self.cache.store(list(todo), out["mu"], out["logvar"])
        except BaseException as error:
            for future in futures.values():
                _fail(future, error)
            raise
        finally:
            for key in todo:
                self._in_flight.pop(key, None)

    async def decode(self, model: LoadedModel, z: FloatArray, deadline: float | None) -> FloatArray:
        """x_mean [N,C,H,W] in [0,1] for latents [N,D]."""
        out = await model.decode_runner.submit(np.ascontiguousarray(z, dtype=np.float32), deadline)
        return out["x_mean"]

    async def sample(
        self,
        model: LoadedModel,
        n: int,
        temperature: float,
        seed: int | None,
        deadline: float | None,
    ) -> tuple[FloatArray, FloatArray, int]:
        """n prior draws (scaled by temperature), their images, and the seed used."""
        z, used_seed = sample_prior(n, model.manifest.latent_dim, temperature, seed)
        return z, await self.decode(model, z, deadline), used_seed

    async def interpolate(
        self,
        model: LoadedModel,
        start: FloatArray,
        end: FloatArray,
        steps: int,
        method: Method,
        deadline: float | None,
    ) -> tuple[FloatArray, FloatArray]:
        """The latent path from start to end and its decoded images."""
        path = interpolate(start, end, steps, method)
        return path, await self.decode(model, path, deadline)


def _fail(future: asyncio.Future[tuple[FloatArray, FloatArray]], error: BaseException) -> None:
    """Passes an encoder failure to requests waiting on the same image."""
    if future.done():
        return
    if isinstance(error, Exception):
        future.set_exception(error)
        future.exception()  # marks it retrieved: there may be no waiter at all
    else:
        future.cancel()
