"""Spatial models (kind `autoencoder`): latents [C,h,w], images of any size the manifest allows,
graphs exported in float32 or float16, pixel values in [0,1] or [-1,1].

Requests of one shape share batches (the batcher keys on shape and caps a batch by pixels);
images larger than a tile are encoded and decoded in blended tiles (`app/serving/tiling.py`);
encoded latents are cached by content hash and image size.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import numpy as np

from app.arrays import FloatArray
from app.config import Settings
from app.repository.manifest import Manifest, SpatialSpec
from app.serving.cache.memory import LatentCache, pixel_digest
from app.serving.latents import Method, interpolate
from app.serving.registry import LoadedModel
from app.serving.tiling import RunTiles, decode_plan, encode_plan, run_tiled

ENCODER_OUTPUTS = ("mu", "logvar")


class ImageSizeError(ValueError):
    """An image or latent of a size the model does not take (422)."""


class TooManyPixels(ImageSizeError):
    """A request whose images together pass VAE_MAX_REQUEST_PIXELS (413)."""


class PriorNotMeaningful(ValueError):
    """Decoding draws from N(0, I) would not give images for this model (422)."""


def _spec(manifest: Manifest) -> SpatialSpec:
    if manifest.spatial is None:
        raise ImageSizeError(f"model {manifest.name} has no spatial latent")
    return manifest.spatial


def check_image_size(manifest: Manifest, height: int, width: int, max_pixels: int) -> None:
    """ImageSizeError unless the model takes an image height x width."""
    spec = _spec(manifest)
    if not spec.free_size:
        if (height, width) != (manifest.image.height, manifest.image.width):
            raise ImageSizeError(
                f"model {manifest.name} takes {manifest.image.width}x{manifest.image.height} "
                f"images only, got {width}x{height}"
            )
        return
    if height % spec.downscale or width % spec.downscale:
        raise ImageSizeError(
            f"image sides must be multiples of {spec.downscale} for model {manifest.name}, "
            f"got {width}x{height}"
        )
    if min(height, width) < spec.min_size:
        raise ImageSizeError(
            f"model {manifest.name} takes images of at least {spec.min_size} pixels a side, "
            f"got {width}x{height}"
        )
    if height * width > max_pixels:
        raise ImageSizeError(
            f"{width}x{height} is more than the {max_pixels} pixels this server takes "
            "(VAE_MAX_PIXELS)"
        )


def check_request_pixels(pixels: int, limit: int) -> None:
    """TooManyPixels when a request's images, together `pixels`, pass `limit`."""
    if pixels > limit:
        raise TooManyPixels(
            f"this request's images are {pixels} pixels in all, more than the {limit} one "
            "request may carry (VAE_MAX_REQUEST_PIXELS): send fewer at a time"
        )


def check_images(manifest: Manifest, shape: tuple[int, ...], settings: Settings) -> None:
    """ImageSizeError unless an image batch [N,C,H,W] is one the model takes, and not more
    pixels than a request may carry."""
    channels = manifest.image.channels
    if len(shape) != 4 or shape[1] != channels:
        raise ImageSizeError(
            f"images for model {manifest.name} are [N, {channels}, H, W], got {list(shape)}"
        )
    check_image_size(manifest, shape[2], shape[3], settings.max_pixels)
    check_request_pixels(shape[0] * shape[2] * shape[3], settings.max_request_pixels)


def check_latent_shape(manifest: Manifest, shape: tuple[int, ...], max_pixels: int) -> None:
    """ImageSizeError unless a latent batch [N,C,h,w] decodes to an image the model gives."""
    spec = _spec(manifest)
    if len(shape) != 4 or shape[1] != spec.latent_channels:
        raise ImageSizeError(
            f"latents for model {manifest.name} are [N, {spec.latent_channels}, h, w], "
            f"got {list(shape)}"
        )
    check_image_size(manifest, shape[2] * spec.downscale, shape[3] * spec.downscale, max_pixels)


def require_prior(manifest: Manifest) -> None:
    """PriorNotMeaningful for a model whose latents are not N(0, I) distributed."""
    if not manifest.prior_meaningful:
        raise PriorNotMeaningful(
            f"model {manifest.name} cannot sample: {manifest.prior_note or 'its latents are not N(0, I)'}"
        )


def to_model_range(manifest: Manifest, images: FloatArray) -> FloatArray:
    """Images in [0,1] -> the range the graphs take."""
    if manifest.value_range[0] < 0:
        return (images * np.float32(2.0) - np.float32(1.0)).astype(np.float32)
    return images


def to_unit_range(manifest: Manifest, images: FloatArray) -> FloatArray:
    """Graph output -> images in [0,1] (clipped, as diffusers' postprocessing does)."""
    if manifest.value_range[0] < 0:
        images = images / np.float32(2.0) + np.float32(0.5)
    return np.clip(images, 0.0, 1.0).astype(np.float32)


@dataclass
class SpatialEncoded:
    """A batch's latent means [N,C,h,w], log-variances (None for a deterministic encoder such
    as TAESD's) and which rows the cache answered."""

    mean: FloatArray
    logvar: FloatArray | None
    cached: list[bool]

    @property
    def sigma(self) -> FloatArray | None:
        """Standard deviations, when the encoder gives them."""
        return None if self.logvar is None else np.exp(0.5 * self.logvar).astype(np.float32)


class SpatialInference:
    """Encode (cached, tiled), decode (tiled) and interpolate for spatial models. Images here
    are in the model's own value range (`to_model_range` / `to_unit_range` convert)."""

    def __init__(self, cache: LatentCache, settings: Settings) -> None:
        self.cache = cache
        self.settings = settings

    def _tiling(self) -> bool:
        return self.settings.tile_size > 0

    async def encode(
        self, model: LoadedModel, x: FloatArray, deadline: float | None
    ) -> SpatialEncoded:
        """Latent means (and log-variances) of images x [N,C,H,W] in the model's range: the
        cache first (keyed by the pixels and the size), the encoder for the misses."""
        manifest = model.manifest
        spec = _spec(manifest)
        check_images(manifest, x.shape, self.settings)
        height, width = x.shape[2], x.shape[3]
        shape = spec.latent_shape(height, width)
        size = int(np.prod(shape))
        digests = await asyncio.to_thread(lambda: [pixel_digest(image) for image in x])
        keys = [LatentCache.key(manifest, "s" + digest) for digest in digests]
        found = await self.cache.lookup(keys, size)
        mean = np.empty((len(x), *shape), np.float32)
        logvar = np.zeros((len(x), *shape), np.float32)
        misses = [i for i, entry in enumerate(found) if entry is None]
        for i, entry in enumerate(found):
            if entry is not None:
                mean[i], logvar[i] = entry[0].reshape(shape), entry[1].reshape(shape)
        if misses:
            moments = await self._encode_rows(model, x[misses], deadline)
            half = moments.shape[1] // 2 if moments.shape[1] == 2 * shape[0] else None
            mean[misses] = moments[:, :half] if half else moments
            if half:
                logvar[misses] = moments[:, half:]
            await self.cache.store(
                [keys[i] for i in misses],
                mean[misses].reshape(len(misses), -1),
                logvar[misses].reshape(len(misses), -1),
            )
        has_logvar = "logvar" in model.encoder.graph.output_names
        return SpatialEncoded(mean, logvar if has_logvar else None, [e is not None for e in found])

    async def _encode_rows(
        self, model: LoadedModel, x: FloatArray, deadline: float | None
    ) -> FloatArray:
        """The encoder's outputs as one array [N, C or 2C, h, w] (mean, then log-variance)."""

        async def run(rows: FloatArray) -> FloatArray:
            out = await model.encode_runner.submit(np.ascontiguousarray(rows), deadline)
            parts = [out[name] for name in ENCODER_OUTPUTS if name in out]
            return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

        spec = _spec(model.manifest)
        plan = encode_plan(self.settings.tile_size, self.settings.tile_overlap, spec.downscale)
        if self._tiling() and spec.free_size and plan.needs_tiles(x.shape[2], x.shape[3]):
            return await run_tiled(x, plan, run, 1 / spec.downscale)
        return await run(x)

    async def decode(self, model: LoadedModel, z: FloatArray, deadline: float | None) -> FloatArray:
        """Images [N,C,H,W] in the model's range for latents z [N,C,h,w], tiled past a tile."""
        manifest = model.manifest
        spec = _spec(manifest)
        check_latent_shape(manifest, z.shape, self.settings.max_pixels)
        pixels = z.shape[0] * z.shape[2] * z.shape[3] * spec.downscale**2
        check_request_pixels(pixels, self.settings.max_request_pixels)
        run: RunTiles = self._decoder_runner(model, deadline)
        plan = decode_plan(self.settings.tile_size, self.settings.tile_overlap, spec.downscale)
        if self._tiling() and spec.free_size and plan.needs_tiles(z.shape[2], z.shape[3]):
            return await run_tiled(z, plan, run, spec.downscale)
        return await run(z)

    @staticmethod
    def _decoder_runner(model: LoadedModel, deadline: float | None) -> RunTiles:
        async def run(rows: FloatArray) -> FloatArray:
            out = await model.decode_runner.submit(np.ascontiguousarray(rows, np.float32), deadline)
            return next(iter(out.values()))

        return run

    async def interpolate(
        self,
        model: LoadedModel,
        start: FloatArray,
        end: FloatArray,
        steps: int,
        method: Method,
        deadline: float | None,
    ) -> tuple[FloatArray, FloatArray]:
        """lerp or slerp between two latents [C,h,w] over the whole latent, and the decoded
        path [steps, C, H, W] in the model's range."""
        if start.shape != end.shape:
            raise ImageSizeError(
                f"both ends must have one latent shape, got {list(start.shape)} and {list(end.shape)}"
            )
        path = interpolate(start.reshape(-1), end.reshape(-1), steps, method)
        path = path.reshape(steps, *start.shape)
        return path, await self.decode(model, path, deadline)
