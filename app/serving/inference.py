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

from app.arrays import FloatArray
from app.serving.cache.memory import LatentCache, pixel_digest
from app.serving.imaging import canonical_pixels
from app.serving.latents import Method, interpolate, sample_prior
from app.serving.registry import LoadedModel

logger = logging.getLogger(__name__)


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
        self,
        model: LoadedModel,
        images: FloatArray,
        deadline: float | None,
        labels: np.ndarray | None = None,
    ) -> Encoded:
        """(mu, logvar) for images [N,C,H,W] (with class indices for a conditional model):
        cache first, then the encoder for the misses.

        Identical images requested at the same moment are encoded once.
        """
        images = canonical_pixels(images)
        dim = model.manifest.latent_dim
        keys = [
            LatentCache.key(model.manifest, pixel_digest(img, _label(labels, i)))
            for i, img in enumerate(images)
        ]
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
            packed = model.encoder.pack(images, labels)
            await self._encode_misses(model, packed, keys, todo, mu, logvar, deadline)
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

    async def encode_layers(
        self,
        model: LoadedModel,
        images: FloatArray,
        deadline: float | None,
        labels: np.ndarray | None = None,
    ) -> dict[str, FloatArray]:
        """Every encoder output (a ladder VAE's lower layer too), straight from the graph."""
        packed = model.encoder.pack(canonical_pixels(images), labels)
        return await model.encode_runner.submit(packed, deadline)

    async def decode(
        self,
        model: LoadedModel,
        z: FloatArray,
        deadline: float | None,
        labels: np.ndarray | None = None,
        noise: FloatArray | None = None,
    ) -> FloatArray:
        """x_mean [N,C,H,W] in [0,1] for latents [N,D]. A model with lower stochastic layers
        takes `noise` for them (zeros, the layers' means, when None)."""
        extra = model.manifest.noise_dim
        if extra:
            fill = np.zeros((len(z), extra), np.float32) if noise is None else noise
            z = np.concatenate([z, fill], axis=1)
        out = await model.decode_runner.submit(model.decoder.pack(z, labels), deadline)
        return out["x_mean"]

    async def sample(
        self,
        model: LoadedModel,
        n: int,
        temperature: float,
        seed: int | None,
        deadline: float | None,
        labels: np.ndarray | None = None,
    ) -> tuple[FloatArray, FloatArray, int]:
        """n prior draws (scaled by temperature), their images, and the seed used. Lower
        stochastic layers are drawn too (ancestral sampling); the latents returned are the top's."""
        dim = model.manifest.latent_dim
        drawn, used_seed = sample_prior(n, dim + model.manifest.noise_dim, temperature, seed)
        z, noise = np.ascontiguousarray(drawn[:, :dim]), np.ascontiguousarray(drawn[:, dim:])
        images = await self.decode(model, z, deadline, labels, noise if noise.size else None)
        return z, images, used_seed

    async def encode_codes(
        self, model: LoadedModel, images: FloatArray, deadline: float | None
    ) -> tuple[FloatArray, NDArray[np.int64]]:
        """A VQ-VAE's z_e flattened [N, D*h*w] and its codes [N,h,w], straight from the
        encoder (not cached: the cache holds Gaussian posteriors)."""
        out = await self.encode_layers(model, images, deadline)
        z_e = out["z_e"]
        return z_e.reshape(len(z_e), -1), out["codes"].astype(np.int64)

    async def sample_codes(
        self,
        model: LoadedModel,
        n: int,
        temperature: float,
        seed: int | None,
        deadline: float | None,
    ) -> tuple[NDArray[np.int64], FloatArray, FloatArray, int]:
        """n code grids from a VQ-VAE's PixelCNN prior (logits divided by temperature; the
        most likely codes at 0), their decoder inputs, their images, and the seed used."""
        if model.vq is None:
            raise ValueError(f"model {model.name} has no code prior")
        if seed is None:
            seed = int(np.random.SeedSequence().generate_state(1)[0])
        codes = await model.vq.sample(n, temperature, np.random.default_rng(seed), deadline)
        z = model.vq.latents(codes)
        return codes, z, await self.decode(model, z, deadline), seed

    async def interpolate(
        self,
        model: LoadedModel,
        start: FloatArray,
        end: FloatArray,
        steps: int,
        method: Method,
        deadline: float | None,
        label: int | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """The latent path from start to end and its decoded images (all of class index
        `label` for a conditional model)."""
        path = interpolate(start, end, steps, method)
        labels = None if label is None else np.full(len(path), label)
        return path, await self.decode(model, path, deadline, labels)


def _fail(future: asyncio.Future[tuple[FloatArray, FloatArray]], error: BaseException) -> None:
    """Passes an encoder failure to requests waiting on the same image."""
    if future.done():
        return
    if isinstance(error, Exception):
        future.set_exception(error)
        future.exception()  # marks it retrieved: there may be no waiter at all
    else:
        future.cancel()


def _label(labels: np.ndarray | None, index: int) -> int | None:
    return None if labels is None else int(labels[index])
