"""Tiled encoding and decoding: a large input cut into overlapping tiles, each run on its own,
blended linearly across the overlap and cropped, as diffusers' `AutoencoderKL.tiled_decode` and
`tiled_encode` do (`blend_v`, `blend_h`). Tiles go through the graph's runner one row of tiles at
a time, so the graph never sees more than a tile, and the memory a request holds beyond its output
is two rows of tiles whatever the image size.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from app.arrays import FloatArray

RunTiles = Callable[[FloatArray], Awaitable[FloatArray]]


@dataclass(frozen=True)
class TilePlan:
    """How one axis pair is cut: input tiles of `tile` with starts `stride` apart; output tiles
    `scale` times larger (1/scale for an encoder, as `scale` < 1 is not an integer, see
    `shrink`), blended over `blend` output pixels and cropped to `limit`."""

    tile: int
    stride: int
    out_tile: int
    blend: int

    @property
    def limit(self) -> int:
        """The output rows (and columns) each tile keeps after blending."""
        return self.out_tile - self.blend

    def needs_tiles(self, height: int, width: int) -> bool:
        """Whether an input of this size is larger than one tile."""
        return height > self.tile or width > self.tile


def decode_plan(tile_px: int, overlap: float, downscale: int) -> TilePlan:
    """Latent tiles of tile_px/downscale cells, decoded to tile_px pixels (diffusers: the overlap
    is `tile_latent_min_size * (1 - overlap)` cells, the blend `tile_sample_min_size * overlap`
    pixels)."""
    tile = max(1, tile_px // downscale)
    stride = max(1, int(tile * (1 - overlap)))
    out_tile = tile * downscale
    return TilePlan(tile, stride, out_tile, out_tile - stride * downscale)


def encode_plan(tile_px: int, overlap: float, downscale: int) -> TilePlan:
    """Image tiles of tile_px pixels (starts a multiple of `downscale` apart), encoded to
    tile_px/downscale latent cells and blended over the overlap's share of them."""
    tile = max(downscale, tile_px // downscale * downscale)
    stride = max(downscale, int(tile * (1 - overlap)) // downscale * downscale)
    out_tile = tile // downscale
    return TilePlan(tile, stride, out_tile, out_tile - stride // downscale)


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


async def _run_row(tiles: list[FloatArray], run: RunTiles) -> list[FloatArray]:
    """Runs one row of tiles, the tiles of one shape as one submission (the batcher batches
    rows of one shape; the last tile of a row is often narrower)."""
    out: list[FloatArray | None] = [None] * len(tiles)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for index, tile in enumerate(tiles):
        by_shape.setdefault(tile.shape, []).append(index)
    for indices in by_shape.values():
        batch = (
            np.concatenate([tiles[i] for i in indices]) if len(indices) > 1 else tiles[indices[0]]
        )
        result = await run(np.ascontiguousarray(batch))
        rows = len(tiles[indices[0]])
        for position, index in enumerate(indices):
            out[index] = np.array(result[position * rows : (position + 1) * rows], np.float32)
    return [tile for tile in out if tile is not None]


async def run_tiled(x: FloatArray, plan: TilePlan, run: RunTiles, scale: float) -> FloatArray:
    """`run` over `x` [N,C,H,W] in overlapping tiles, blended; `scale` is output pixels per
    input pixel (the downscale factor to decode, its inverse to encode)."""
    height, width = x.shape[2], x.shape[3]
    out: FloatArray | None = None
    above: list[FloatArray] | None = None
    top = 0
    for i in range(0, height, plan.stride):
        tiles = [
            x[:, :, i : i + plan.tile, j : j + plan.tile] for j in range(0, width, plan.stride)
        ]
        row = await _run_row(tiles, run)
        if out is None:
            channels = row[0].shape[1]
            out = np.empty(
                (len(x), channels, round(height * scale), round(width * scale)), np.float32
            )
        left = 0
        for j, tile in enumerate(row):
            if above is not None:
                blend_v(above[j], tile, plan.blend)
            if j > 0:
                blend_h(row[j - 1], tile, plan.blend)
            kept = tile[:, :, : plan.limit, : plan.limit]
            out[:, :, top : top + kept.shape[2], left : left + kept.shape[3]] = kept
            left += kept.shape[3]
        top += min(plan.limit, row[0].shape[2])
        above = row
    assert out is not None
    return out
