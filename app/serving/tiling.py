"""Tiled encoding and decoding, only where it does not change a result silently.

An AutoencoderKL sees the whole image (GroupNorm, a mid-block attention): tiles change its
result, so it is tiled only when the memory budget requires it (`VAE_TILING=auto`) and then
exactly as diffusers' `enable_tiling()` does (`AutoencoderKL.tiled_decode`, `_tiled_encode`:
tiles of the config's `sample_size`, starts `tile * (1 - 0.25)` apart, `blend_v` then `blend_h`
across the overlap, each tile cropped to `row_limit`), and the answer says so (`note`, the
`X-VAE-Tiling` header). A TAESD-style AutoencoderTiny sees a bounded neighbourhood: its tiles
carry a halo as wide as its receptive field and are cropped to their core, which is exact.

The memory budget decides whether a request runs in one piece or in tiles, and how many images
or tiles an engine call takes (`RunPlan`, made by adapters/spatial_sizes.py's `plan_run`);
`run_plan` runs it and stops between engine calls once the request's deadline passed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.arrays import FloatArray
from app.config import Settings
from app.repository.manifest import Manifest
from app.serving.deadlines import exceeded

RunTiles = Callable[[FloatArray], Awaitable[FloatArray]]


@dataclass(frozen=True)
class TilePlan:
    """diffusers' blended tiles: input tiles of `tile` with starts `stride` apart, their outputs
    (`scale` output pixels an input pixel) blended over `blend` and cropped to `limit`."""

    tile: int
    stride: int
    blend: int
    limit: int
    scale: float
    overlap: float

    def needs_tiles(self, height: int, width: int) -> bool:
        """Whether an input of this size is larger than one tile (diffusers' test)."""
        return height > self.tile or width > self.tile

    @property
    def pixels(self) -> int:
        """A tile's side in image pixels."""
        return self.tile if self.scale < 1 else round(self.tile * self.scale)

    @property
    def note(self) -> str:
        """What the X-VAE-Tiling header says."""
        return f"diffusers tiles {self.pixels} px, overlap {self.overlap:g}"


@dataclass(frozen=True)
class HaloPlan:
    """Exact tiles for a bounded receptive field: cores of `core` input units, each run with
    `halo` more on every side (where the image has them) and cropped back to its core."""

    core: int
    halo: int
    scale: float

    def needs_tiles(self, height: int, width: int) -> bool:
        """Whether an input of this size is larger than one core."""
        return height > self.core or width > self.core

    @property
    def pixels(self) -> int:
        """A tile's side (core and halo) in image pixels."""
        side = self.core + 2 * self.halo
        return side if self.scale < 1 else round(side * self.scale)

    @property
    def note(self) -> str:
        """What the X-VAE-Tiling header says."""
        unit = 1 if self.scale < 1 else self.scale
        core, halo = round(self.core * unit), round(self.halo * unit)
        return f"exact tiles {core} px, halo {halo} px"


Plan = TilePlan | HaloPlan


def diffusers_decode_plan(sample_size: int, levels: int, overlap: float) -> TilePlan:
    """`AutoencoderKL.tiled_decode`'s tiles: `tile_latent_min_size` latent cells, blended over
    `tile_sample_min_size * overlap` pixels."""
    latent = int(sample_size / (2 ** (levels - 1)))
    blend = int(sample_size * overlap)
    return TilePlan(
        latent, int(latent * (1 - overlap)), blend, sample_size - blend, 2 ** (levels - 1), overlap
    )


def diffusers_encode_plan(sample_size: int, levels: int, overlap: float) -> TilePlan:
    """`AutoencoderKL._tiled_encode`'s tiles: `tile_sample_min_size` pixels, blended over
    `tile_latent_min_size * overlap` latent cells."""
    latent = int(sample_size / (2 ** (levels - 1)))
    blend = int(latent * overlap)
    stride = int(sample_size * (1 - overlap))
    return TilePlan(sample_size, stride, blend, latent - blend, 1 / 2 ** (levels - 1), overlap)


def blended_plan(tile_px: int, overlap: float, downscale: int, encode: bool) -> TilePlan:
    """diffusers' scheme at `tile_px` for a model it has no tiles for (an ONNX import)."""
    levels = max(1, round(math.log2(downscale)) + 1)
    plan = diffusers_encode_plan if encode else diffusers_decode_plan
    return plan(max(downscale, tile_px // downscale * downscale), levels, overlap)


def tiny_halo_cells(config: dict[str, Any], encode: bool) -> int:
    """An AutoencoderTiny's receptive radius in latent cells, plus one: each 3x3 convolution
    reaches one cell of its resolution further (stage i of the decoder runs at 2**i cells a
    latent cell; a stride-2 convolution of the encoder at its input's resolution)."""
    key = "num_encoder_blocks" if encode else "num_decoder_blocks"
    blocks = [int(n) for n in config.get(key) or ((1, 3, 3, 3) if encode else (3, 3, 3, 1))]
    stages = len(blocks)
    if encode:  # in pixels, then cells of 2**(stages-1) pixels
        pixels = 1 + sum(3 * n * 2**i for i, n in enumerate(blocks))
        pixels += sum(2 ** (i - 1) for i in range(1, stages)) + 2 ** (stages - 1)
        return math.ceil(pixels / 2 ** (stages - 1)) + 1
    cells = sum((3 * n + 1 + (i == 0)) / 2**i for i, n in enumerate(blocks))
    return math.ceil(cells) + 1


def tile_plan(manifest: Manifest, settings: Settings, encode: bool) -> Plan | None:
    """How this model is tiled (None: never, VAE_TILING=never or VAE_TILE_SIZE=0, a model of one
    size, or tiles too small to step through an image): diffusers' tiles for an AutoencoderKL,
    exact halo tiles for an AutoencoderTiny, diffusers' scheme at VAE_TILE_SIZE for anything
    else."""
    plan = _tile_plan(manifest, settings, encode)
    if isinstance(plan, TilePlan) and (plan.stride < 1 or plan.limit < 1):
        return None
    return plan


def _tile_plan(manifest: Manifest, settings: Settings, encode: bool) -> Plan | None:
    spec = manifest.spatial
    if settings.tiling == "never" or settings.tile_size == 0 or spec is None:
        return None
    if not spec.free_size:
        return None
    config = manifest.source.get("config")
    config = config if isinstance(config, dict) else {}
    kind, down = manifest.source.get("class"), spec.downscale
    if kind == "AutoencoderKL" and config.get("sample_size"):
        size = config["sample_size"]
        sample = int(size[0] if isinstance(size, list) else size)
        levels = len(config.get("block_out_channels") or [0] * 4)
        make = diffusers_encode_plan if encode else diffusers_decode_plan
        return make(sample, levels, settings.tile_overlap)
    if kind == "AutoencoderTiny":
        cells = max(1, settings.tile_size // down)
        halo = tiny_halo_cells(config, encode)
        if encode:
            return HaloPlan(cells * down, halo * down, 1 / down)
        return HaloPlan(cells, halo, down)
    return blended_plan(settings.tile_size, settings.tile_overlap, down, encode)


def blend_v(above: FloatArray, tile: FloatArray, extent: int) -> None:
    """Fades the bottom `extent` rows of `above` into the top rows of `tile`, in place."""
    extent = min(above.shape[2], tile.shape[2], extent)
    if extent <= 0:
        return
    weight = (np.arange(extent, dtype=np.float32) / extent)[None, None, :, None]
    tile[:, :, :extent, :] = (
        above[:, :, -extent:, :] * (1 - weight) + tile[:, :, :extent, :] * weight
    )


def blend_h(left: FloatArray, tile: FloatArray, extent: int) -> None:
    """Fades the right `extent` columns of `left` into the left columns of `tile`, in place."""
    extent = min(left.shape[3], tile.shape[3], extent)
    if extent <= 0:
        return
    weight = (np.arange(extent, dtype=np.float32) / extent)[None, None, None, :]
    tile[:, :, :, :extent] = (
        left[:, :, :, -extent:] * (1 - weight) + tile[:, :, :, :extent] * weight
    )


@dataclass(frozen=True)
class RunPlan:
    """How one request runs: in one piece (`tiles` None) or in tiles, `per_call` images or tiles
    an engine call, and its estimated peak."""

    tiles: Plan | None
    per_call: int
    peak: int

    @property
    def note(self) -> str | None:
        """The X-VAE-Tiling header's text, when tiled."""
        return None if self.tiles is None else self.tiles.note


@dataclass
class _Calls:
    """Runs inputs through the graph a few at a time, stopping once the deadline passed."""

    run: RunTiles
    per_call: int
    deadline: float | None

    async def __call__(self, pieces: list[FloatArray]) -> list[FloatArray]:
        """The outputs of `pieces` (each [1,C,h,w]), those of one shape batched up to per_call."""
        out: list[FloatArray | None] = [None] * len(pieces)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, piece in enumerate(pieces):
            by_shape.setdefault(piece.shape, []).append(index)
        for indices in by_shape.values():
            for start in range(0, len(indices), self.per_call):
                group = indices[start : start + self.per_call]
                self._check()
                result = await self.run(
                    np.ascontiguousarray(np.concatenate([pieces[i] for i in group]))
                )
                for position, index in enumerate(group):
                    out[index] = np.array(result[position : position + 1], np.float32)
        return [piece for piece in out if piece is not None]

    def _check(self) -> None:
        now = time.monotonic()
        if self.deadline is not None and now > self.deadline:
            raise exceeded(self.deadline, now)


async def _blended(x: FloatArray, plan: TilePlan, calls: _Calls) -> FloatArray:
    """One image [1,C,H,W] through diffusers' tiled loop: rows of tiles, each blended with the
    (already blended) tile above and to its left, cropped to `limit`, concatenated."""
    height, width = x.shape[2], x.shape[3]
    rows: list[FloatArray] = []
    above: list[FloatArray] | None = None
    for i in range(0, height, plan.stride):
        row = await calls(
            [x[:, :, i : i + plan.tile, j : j + plan.tile] for j in range(0, width, plan.stride)]
        )
        kept = []
        for j, tile in enumerate(row):
            if above is not None:
                blend_v(above[j], tile, plan.blend)
            if j > 0:
                blend_h(row[j - 1], tile, plan.blend)
            kept.append(tile[:, :, : plan.limit, : plan.limit])
        rows.append(np.concatenate(kept, axis=3))
        above = row
    return np.concatenate(rows, axis=2)


async def _haloed(x: FloatArray, plan: HaloPlan, calls: _Calls) -> FloatArray:
    """One image [1,C,H,W] in cores with their halo, each output cropped back to its core."""
    height, width, scale = x.shape[2], x.shape[3], plan.scale
    rows = []
    for i in range(0, height, plan.core):
        top = max(0, i - plan.halo)
        starts = range(0, width, plan.core)
        lefts = [max(0, j - plan.halo) for j in starts]
        pieces = [
            x[:, :, top : i + plan.core + plan.halo, left : j + plan.core + plan.halo]
            for j, left in zip(starts, lefts, strict=True)
        ]
        outs = await calls(pieces)
        cores = []
        for j, left, out in zip(starts, lefts, outs, strict=True):
            y0, x0 = round((i - top) * scale), round((j - left) * scale)
            rows_kept = round(min(plan.core, height - i) * scale)
            cols_kept = round(min(plan.core, width - j) * scale)
            cores.append(out[:, :, y0 : y0 + rows_kept, x0 : x0 + cols_kept])
        rows.append(np.concatenate(cores, axis=3))
    return np.concatenate(rows, axis=2)


async def run_plan(
    x: FloatArray, plan: RunPlan, run: RunTiles, deadline: float | None = None
) -> FloatArray:
    """`run` over inputs x [N,C,H,W] as `plan` says: `per_call` images an engine call, or each
    image in tiles (diffusers' blended ones, or exact halo tiles), `per_call` tiles a call."""
    calls = _Calls(run, max(1, plan.per_call), deadline)
    if plan.tiles is None:
        if len(x) <= calls.per_call:
            return await run(np.ascontiguousarray(x))
        return np.concatenate(await calls([x[i : i + 1] for i in range(len(x))]))
    images = []
    for i in range(len(x)):
        image = x[i : i + 1]
        if isinstance(plan.tiles, TilePlan):
            images.append(await _blended(image, plan.tiles, calls))
        else:
            images.append(await _haloed(image, plan.tiles, calls))
    return np.concatenate(images)
