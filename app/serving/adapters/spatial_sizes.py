"""The sizes a spatial model (kind `autoencoder`) takes: image sides (fixed, or free in multiples
of its downscale factor from a minimum), latent grids [C,h,w], the pixels one image and one
request may carry (VAE_MAX_PIXELS, VAE_MAX_REQUEST_PIXELS), and how a request runs within the
memory budget (VAE_MEMORY_BUDGET_MB): in one piece, in tiles, or refused with the largest size
that fits (`plan_run`)."""

from __future__ import annotations

import math

from app.config import Settings
from app.repository.manifest import Manifest, SpatialSpec
from app.serving.adapters.errors import ImageSizeError, TooManyPixels
from app.serving.loaded import ModelParts
from app.serving.memory import MIB, ONNX_RUNTIME, Engine, budget_bytes, footprint, io_bytes
from app.serving.tiling import RunPlan, tile_plan


class OverMemoryBudget(TooManyPixels):
    """A request whose estimated peak does not fit the memory budget, even tiled (413)."""


def spatial_spec(manifest: Manifest) -> SpatialSpec:
    """The manifest's spatial latent; ImageSizeError for a model without one."""
    if manifest.spatial is None:
        raise ImageSizeError(f"model {manifest.name} has no spatial latent")
    return manifest.spatial


def check_image_size(manifest: Manifest, height: int, width: int, max_pixels: int) -> None:
    """ImageSizeError unless the model takes an image height x width."""
    spec = spatial_spec(manifest)
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


def check_latent_shape(manifest: Manifest, shape: tuple[int, ...], settings: Settings) -> None:
    """ImageSizeError unless a latent batch [N,C,h,w] decodes to images the model gives, and
    not more pixels than a request may carry."""
    spec = spatial_spec(manifest)
    if len(shape) != 4 or shape[1] != spec.latent_channels:
        raise ImageSizeError(
            f"latents for model {manifest.name} are [N, {spec.latent_channels}, h, w], "
            f"got {list(shape)}"
        )
    height, width = shape[2] * spec.downscale, shape[3] * spec.downscale
    check_image_size(manifest, height, width, settings.max_pixels)
    check_request_pixels(shape[0] * height * width, settings.max_request_pixels)


def _choose(
    manifest: Manifest,
    settings: Settings,
    shape: tuple[int, ...],
    encode: bool,
    engine: Engine = ONNX_RUNTIME,
) -> RunPlan | None:
    """The plan for inputs [N,C,H,W] (latents when decoding) on `engine`, None when nothing
    fits."""
    count, height, width = shape[0], shape[2], shape[3]
    scale = 1 if encode else manifest.spatial.downscale if manifest.spatial else 1
    pixels_h, pixels_w = height * scale, width * scale
    budget, model = budget_bytes(settings), footprint(manifest, engine)
    room = budget - io_bytes(count, pixels_h, pixels_w)
    one = model.graph_bytes(1, pixels_h, pixels_w)
    plan = tile_plan(manifest, settings, encode)
    larger = plan is not None and plan.needs_tiles(height, width)
    if one <= room and not (larger and settings.tiling == "always"):
        return RunPlan(None, min(count, room // one), budget - room + one * min(count, room // one))
    if plan is None or not larger:
        return None
    tile = model.graph_bytes(1, plan.pixels, plan.pixels)
    room -= 2 * io_bytes(1, plan.pixels, pixels_w)  # two rows of tiles kept to blend
    if tile > room:
        return None
    # As many tiles a call as fit, up to a row of them and VAE_MAX_BATCH_PIXELS.
    most = min(math.ceil(pixels_w / plan.pixels) + 1, settings.max_batch_pixels // plan.pixels**2)
    per_call = int(max(1, min(room // tile, most)))
    return RunPlan(plan, per_call, budget - room + tile * per_call)


def largest_side(
    manifest: Manifest,
    settings: Settings,
    count: int,
    encode: bool,
    engine: Engine = ONNX_RUNTIME,
) -> int | None:
    """The largest square image side (pixels) whose request of `count` images fits the budget
    on `engine`."""
    spec = manifest.spatial
    if spec is None:
        return None
    step, channels = spec.downscale, spec.latent_channels
    unit = 1 if encode else step
    low, high = spec.min_size // step, math.isqrt(settings.max_pixels) // step
    smallest = (count, channels, low * step // unit, low * step // unit)
    if _choose(manifest, settings, smallest, encode, engine) is None:
        return None
    while low < high:  # the largest multiple of `step` that fits
        middle = (low + high + 1) // 2
        side = middle * step // unit
        if _choose(manifest, settings, (count, channels, side, side), encode, engine) is None:
            high = middle - 1
        else:
            low = middle
    return low * step


def plan_run(
    manifest: Manifest,
    settings: Settings,
    shape: tuple[int, ...],
    encode: bool,
    engine: Engine = ONNX_RUNTIME,
) -> RunPlan:
    """How a request of inputs [N,C,H,W] runs within the memory budget on `engine` (see
    `engine_of`; the default, ONNX Runtime fp32, is the costlier); OverMemoryBudget (413, with
    the largest square size that fits) when it cannot, even tiled."""
    chosen = _choose(manifest, settings, shape, encode, engine)
    if chosen is not None:
        return chosen
    raise OverMemoryBudget(_over_budget(manifest, settings, shape, encode, engine))


def _over_budget(
    manifest: Manifest, settings: Settings, shape: tuple[int, ...], encode: bool, engine: Engine
) -> str:
    count = shape[0]
    scale = 1 if encode or manifest.spatial is None else manifest.spatial.downscale
    height, width = shape[2] * scale, shape[3] * scale
    need = footprint(manifest, engine).graph_bytes(count, height, width)
    need += io_bytes(count, height, width)
    what = "encoding" if encode else "decoding"
    plural = "s" if count > 1 else ""
    budget = budget_bytes(settings) // MIB
    text = (
        f"{what} {count} image{plural} of {width}x{height} needs about {need // MIB} MB in one "
        f"piece, more than the memory budget of {budget} MB (VAE_MEMORY_BUDGET_MB)"
    )
    if tile_plan(manifest, settings, encode) is None:
        text += ", and tiling is off for it (VAE_TILING=never, VAE_TILE_SIZE=0, or tiles too small)"
    else:
        text += ", even in tiles"
    side = largest_side(manifest, settings, count, encode, engine)
    if side is None:
        return text + ": raise VAE_MEMORY_BUDGET_MB"
    return text + f": the largest that fits is {side}x{side} ({count} at a time)"


def engine_of(model: ModelParts, which: str, exact: bool = False) -> Engine:
    """The engine and precision that run graph `which` (encoder, decoder) of `model`: its fp32
    graph's when `exact` and the chosen one is of a lower precision, else the chosen graph's."""
    lazy = model.exact.get(which) if exact else None
    if lazy is not None:
        return Engine(lazy.spec.engine, lazy.spec.precision)
    graph = model.encoder.graph if which == "encoder" else model.decoder.graph
    return Engine.of(graph)
