"""The spatial autoencoder family (kind `autoencoder`, imported from diffusers or ONNX): latents
[C,h,w], images of any size the manifest allows (tiled past a tile), graphs in float32 or
float16, pixels in [0,1] or [-1,1], and the model's scaling and shift factors. It reads every
image source (raw tensors and image files too) and answers png, jpeg, raw uint8 [N,H,W,C], array
or npy, one image as a file when the client accepts one. Its prior gives no images."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from app.arrays import FloatArray
from app.repository.manifest import Manifest, SpatialSpec
from app.serving.adapters import requests as calls
from app.serving.adapters.base import Loading, ModelAdapter, refuse_video, require_prior
from app.serving.adapters.errors import (
    InvalidLabel,
    InvalidLatent,
    InvalidRequest,
    LatentsExpected,
    PriorNotMeaningful,
    check_count,
)
from app.serving.adapters.inputs import check_finite_output
from app.serving.adapters.results import Decoded, Drawn, Encoding, Form, GridEncoding, sigma_of
from app.serving.adapters.spatial_sizes import (
    check_images,
    check_latent_shape,
    check_request_pixels,
    engine_of,
    plan_run,
    spatial_spec,
)
from app.serving.batcher import Runner
from app.serving.cache.memory import LatentCache, pixel_digest
from app.serving.imaging import ImageError, decode_base64
from app.serving.loaded import ModelParts
from app.serving.memory import release_memory
from app.serving.packing import PackedGraph
from app.serving.spatial_graphs import (
    batch_rows_by_pixels,
    batches_pay,
    exact_runners,
    load_spatial_graphs,
)
from app.serving.spatial_io import (
    as_unit_images,
    decode_any_size,
    same_size,
    to_model_range,
    to_unit_range,
)
from app.serving.tensors import TensorError, unpack_latents
from app.serving.tiling import RunPlan, run_plan

FORMATS = ("png", "jpeg", "raw", "array", "npy")
ENCODER_OUTPUTS = ("mu", "logvar")


def grid_array(value: Any) -> FloatArray:
    """Nested lists of latents as float32; InvalidLatent when they are ragged."""
    try:
        return np.asarray(value, dtype=np.float32)
    except (ValueError, TypeError):
        raise InvalidLatent("latents must be equal-size nested lists of numbers") from None


class SpatialAdapter(ModelAdapter):
    """autoencoder: encode (cached, tiled), decode (tiled) and interpolate over latent grids."""

    @classmethod
    def load(cls, manifest: Manifest, directory: Path, loading: Loading) -> ModelParts:
        """Size-free graphs (float16 ones behind a float32 face), warmed at the smallest size,
        their runners capped by image pixels as well as rows (and unbatched where batching
        does not pay: on a CPU, by default). A graph
        chosen at a lower precision gets its fp32 graph too, opened by the first call that asks
        for exact results (`exact`), behind a runner of its own."""
        settings, scale = loading.settings, spatial_spec(manifest).downscale
        encoder, decoder = load_spatial_graphs(directory, manifest, settings)
        pixels = settings.max_batch_pixels
        batching = batches_pay(settings.spatial_batching, decoder.graph.provider)
        caps = {"encoder": batch_rows_by_pixels(pixels, 1)}
        caps["decoder"] = batch_rows_by_pixels(pixels, scale * scale)

        def runner(graph: PackedGraph, which: str, label: str = "") -> Runner:
            return loading.runner(graph, which + label, caps[which], batching)

        chosen = {"encoder": encoder, "decoder": decoder}
        exact = exact_runners(directory, manifest, settings, chosen, partial(runner, label="-fp32"))
        return ModelParts(
            manifest,
            directory,
            encoder,
            decoder,
            runner(encoder, "encoder"),
            runner(decoder, "decoder"),
            exact=exact,
        )

    @property
    def spec(self) -> SpatialSpec:
        """The latent grid's channels, the downscale factor and the sizes the model takes."""
        return spatial_spec(self.manifest)

    def label_index(self, label: int | None) -> int | None:
        """None: a spatial model takes no label."""
        if label is not None:
            raise InvalidLabel("a spatial model takes no 'label'")
        return None

    # ---- encode ------------------------------------------------------------------------------
    async def encode(self, call: calls.EncodeCall) -> Encoding:
        """Images of one size -> latent means (and sigmas), as JSON, .npy or raw bytes."""
        if call.samples or call.label is not None or call.layers != "top":
            raise InvalidRequest(
                f"model {self.manifest.name} is a spatial autoencoder: 'samples', 'label' and "
                "'layers' do not apply"
            )
        x = await self._model_images(call.images)
        check_count(len(x), self.settings.max_items, "image")
        check_images(self.manifest, x.shape, self.settings)
        runs = engine_of(self.model, "encoder", call.exact)
        plan = plan_run(self.manifest, self.settings, x.shape, encode=True, engine=runs)
        deadline = self.service.deadline(int(np.prod(x.shape)) // x.shape[1])
        mean, logvar, cached = await self._encode(x, deadline, plan, call.exact)
        accepts = call.accepts
        form: Form = "npy" if accepts.npy else "raw" if accepts.raw else "json"
        sigma = None if logvar is None else sigma_of(logvar)
        manifest = self.manifest
        return GridEncoding(
            form, mean, sigma, cached, manifest.scaling_factor, manifest.shift_factor, plan.note
        )

    async def _model_images(self, source: calls.ImageSource) -> FloatArray:
        """Images [N,C,H,W] in the model's value range (a raw tensor may come in it already)."""
        if isinstance(source, calls.RawTensor) and source.model_range and source.dtype != "uint8":
            tensor = source.array()
            x = tensor[None] if tensor.ndim == 3 else tensor
            if x.ndim != 4:
                raise TensorError(f"images are [N,C,H,W], got {list(x.shape)}")
            return x
        return to_model_range(self.manifest, await self._unit_images(source))

    async def _unit_images(self, source: calls.ImageSource) -> FloatArray:
        """Images [N,C,H,W] in [0,1] from any source (files decoded off the event loop)."""
        channels, limit = self.manifest.image.channels, self.settings.max_pixels
        if isinstance(source, calls.ImageFile):
            return (await asyncio.to_thread(decode_any_size, source.data, channels, limit))[None]
        if isinstance(source, calls.RawTensor):
            tensor = source.array()
            return as_unit_images(tensor.astype(np.uint8) if source.dtype == "uint8" else tensor)
        if isinstance(source, calls.NpyArray):
            return as_unit_images(source.array)
        if isinstance(source, calls.Base64Images):
            return await asyncio.to_thread(self._decode_files, source.texts)
        if isinstance(source, calls.VideoFile):
            raise refuse_video(self.manifest)
        try:
            stacked = np.asarray(source.values, dtype=np.float32)
        except (ValueError, TypeError):
            raise ImageError("arrays must be equal-size nested lists of numbers") from None
        return as_unit_images(stacked)

    def _decode_files(self, texts: list[str]) -> FloatArray:
        """Base64 image files of one size -> [N,C,H,W] in [0,1]; TooManyPixels as soon as those
        decoded so far pass what a request may carry (memory stays bounded by it)."""
        channels, total, decoded = self.manifest.image.channels, 0, []
        for text in texts:
            image = decode_any_size(decode_base64(text), channels, self.settings.max_pixels)
            total += image.shape[-2] * image.shape[-1]
            check_request_pixels(total, self.settings.max_request_pixels)
            decoded.append(image)
        return same_size(decoded)

    async def _encode(
        self, x: FloatArray, deadline: float, plan: RunPlan | None = None, exact: bool = False
    ) -> tuple[FloatArray, FloatArray | None, list[bool]]:
        """Latent means and log-variances (None for a deterministic encoder such as TAESD's)
        of images x in the model's range: the cache first (keyed by the pixels and the size,
        and apart for an exact graph's), then the encoder (its fp32 graph when `exact`) as
        `plan` says (worked out here when not given)."""
        check_images(self.manifest, x.shape, self.settings)
        runs = engine_of(self.model, "encoder", exact)
        chosen = plan or plan_run(self.manifest, self.settings, x.shape, True, runs)
        shape = self.spec.latent_shape(x.shape[2], x.shape[3])
        digests = await asyncio.to_thread(lambda: [pixel_digest(image) for image in x])
        prefix = "x" if exact and "encoder" in self.model.exact else "s"
        keys = [LatentCache.key(self.manifest, prefix + digest) for digest in digests]

        async def compute(rows: list[int]) -> tuple[FloatArray, FloatArray]:
            moments = await self._encode_rows(x[rows], deadline, chosen, exact)
            half = moments.shape[1] // 2 if moments.shape[1] == 2 * shape[0] else None
            mean = moments[:, :half] if half else moments
            logvar = moments[:, half:] if half else np.zeros_like(mean)
            return mean.reshape(len(rows), -1), logvar.reshape(len(rows), -1)

        found = await self.service.moments(keys, int(np.prod(shape)), compute)
        has_logvar = "logvar" in self.model.encoder.graph.output_names
        logvar = found.logvar.reshape(len(x), *shape) if has_logvar else None
        return found.mean.reshape(len(x), *shape), logvar, found.cached

    async def _encode_rows(
        self, x: FloatArray, deadline: float, plan: RunPlan, exact: bool = False
    ) -> FloatArray:
        """The encoder's outputs as one array [N, C or 2C, h, w] (mean, then log-variance), in
        one piece or tiles as `plan` says, from its fp32 graph when `exact`."""
        model = self.model
        runner = await model.exact_runner("encoder") if exact else model.encode_runner

        async def run(rows: FloatArray) -> FloatArray:
            out = await runner.submit(np.ascontiguousarray(rows), deadline)
            parts = [out[name] for name in ENCODER_OUTPUTS if name in out]
            return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

        try:
            return await run_plan(x, plan, run, deadline)
        finally:
            await _released(plan)

    # ---- decode ------------------------------------------------------------------------------
    async def decode(self, call: calls.DecodeCall) -> Decoded:
        """Latent grids [N,C,h,w] (JSON, .npy or raw; packed ones unpacked; scaled ones
        unscaled) -> images in the format asked for, or picked by what the client accepts."""
        z = self._latents(call)
        check_count(len(z), self.settings.max_items, "latent")
        z = _unscaled(z, call.scaling_factor, call.shift_factor)
        if not np.isfinite(z).all():
            raise InvalidLatent("latents must not contain NaN or infinity")
        check_latent_shape(self.manifest, z.shape, self.settings)
        runs = engine_of(self.model, "decoder", call.exact)
        plan = plan_run(self.manifest, self.settings, z.shape, encode=False, engine=runs)
        deadline = self.service.deadline(self._pixels(z))
        output = check_finite_output(await self._decode(z, deadline, plan, call.exact))
        fmt = _format(call)
        file = fmt in {"png", "jpeg"} and call.accepts.image(fmt)
        return Decoded(to_unit_range(self.manifest, output), fmt, file, output, plan.note)

    def _pixels(self, z: FloatArray) -> int:
        """The image pixels latents [N,C,h,w] decode to."""
        return len(z) * z.shape[2] * z.shape[3] * self.spec.downscale**2

    def _latents(self, call: calls.DecodeCall) -> FloatArray:
        source = call.latents
        if isinstance(source, calls.ImageFile):
            raise LatentsExpected("/decode takes latents, not an image")
        if isinstance(source, calls.NestedLatents):
            if source.codes is not None or call.label is not None:
                raise InvalidRequest("a spatial model takes only 'latents'")
            return self._shaped(grid_array(source.latents), None, None)
        if call.label is not None:
            raise InvalidLabel("a spatial model takes no 'label'")
        z = (
            source.array()
            if isinstance(source, calls.RawTensor)
            else source.array.astype(np.float32)
        )
        return self._shaped(z, call.height, call.width)

    def _shaped(self, z: FloatArray, height: int | None, width: int | None) -> FloatArray:
        """Latents as [N,C,h,w]: a single [C,h,w] gets a batch axis; packed ones are unpacked."""
        if z.ndim == 3 and height is not None and width is not None:
            return unpack_latents(z, height, width, self.spec.downscale)
        if z.ndim == 3:
            return z[None]
        return z

    async def _decode(
        self, z: FloatArray, deadline: float, plan: RunPlan | None = None, exact: bool = False
    ) -> FloatArray:
        """Images [N,C,H,W] in the model's range for latents z [N,C,h,w], in one piece or tiles
        as `plan` says (worked out here when not given), from the fp32 decoder when `exact`."""
        check_latent_shape(self.manifest, z.shape, self.settings)
        runs = engine_of(self.model, "decoder", exact)
        chosen = plan or plan_run(self.manifest, self.settings, z.shape, False, runs)
        model = self.model
        runner = await model.exact_runner("decoder") if exact else model.decode_runner

        async def run(rows: FloatArray) -> FloatArray:
            packed = np.ascontiguousarray(rows, np.float32)
            out = await runner.submit(packed, deadline)
            return next(iter(out.values()))

        try:
            return await run_plan(z, chosen, run, deadline)
        finally:
            await _released(chosen)

    async def images_of(
        self, z: FloatArray, label: int | None, deadline: float, noise: FloatArray | None = None
    ) -> FloatArray:
        """Finite images [N,C,H,W] in [0,1] for latent grids z."""
        output = check_finite_output(await self._decode(z, deadline))
        return to_unit_range(self.manifest, output)

    # ---- sample, interpolate ------------------------------------------------------------------
    async def sample(self, call: calls.SampleCall) -> Drawn:
        """Refused: a spatial latent's prior gives no images (and its grid no size to draw)."""
        require_prior(self.manifest)
        raise PriorNotMeaningful(
            f"model {self.manifest.name} cannot sample: a spatial latent has no prior to draw from"
        )

    async def endpoint(self, end: calls.Endpoint, label: int | None, deadline: float) -> FloatArray:
        """A latent grid [C,h,w] as given, or an image's latent mean."""
        if isinstance(end, calls.LatentPoint):
            z = grid_array(end.value)
            if z.ndim != 3 or not np.isfinite(z).all():
                raise InvalidLatent("a spatial model's latent endpoint is [C][h][w] finite numbers")
            return z
        if isinstance(end, calls.CodesPoint):
            raise InvalidRequest("a spatial model has no codes")
        try:
            images = await self._unit_images(end)
        except ImageError as error:
            if not isinstance(end, calls.ListImages):
                raise
            raise ImageError(
                f"{error}: an `array` end is an image; a latent grid [C][h][w] goes in `latent` "
                "(in vae_client: Latent(grid))"
            ) from None
        x = to_model_range(self.manifest, images)
        mean, _, _ = await self._encode(x, deadline)
        return mean[0]


# A request whose estimated peak passes this gives the freed pages back to the system after it.
# Not lower: malloc_trim after every 512 px decode cost 12% of the images/s under load (kl-small
# on OpenVINO bf16, 8 clients: 4.9 against 5.5 images/s), and a working set that size is reused
# by the next request anyway; what must come back is the 1-2 GB of a 1024-2048 px decode.
RELEASE_PAST_BYTES = 512 * 1024 * 1024


async def _released(plan: RunPlan) -> None:
    """Returns a large request's freed memory to the system (off the event loop)."""
    if plan.peak > RELEASE_PAST_BYTES:
        await asyncio.to_thread(release_memory)


def _unscaled(z: FloatArray, scaling: float | None, shift: float | None) -> FloatArray:
    """Latents scaled for a diffusion model back to the decoder's: z / scaling + shift."""
    if scaling == 0:
        raise InvalidRequest("scaling_factor must not be 0: decoding divides by it")
    if scaling is not None:
        z = z / np.float32(scaling)
    if shift is not None:
        z = z + np.float32(shift)
    return z


def _format(call: calls.DecodeCall) -> str:
    """The format asked for, else an image file the client accepts, else npy, raw or png."""
    fmt = call.format
    if fmt is None:
        accepts = call.accepts
        fmt = accepts.first_image() or ("npy" if accepts.npy else "raw" if accepts.raw else "png")
    if fmt not in FORMATS:
        raise InvalidRequest(f"format must be one of {', '.join(FORMATS)}")
    return fmt
