"""Frames decoded in spatial tiles, as diffusers' `enable_tiling()` decodes them for the
temporal-tile models (HunyuanVideo, LTX-Video: `tiled_decode` on each time tile): latent tiles
of `tile` pixels starting every `stride`, each decoded alone, blended with the tile above
(`blend_v`) and the tile to the left (`blend_h`) over `tile - stride` pixels and cropped to
`stride`. Blending changes the result against one call on the whole frame, so a clip is tiled
only where the memory budget needs it (VAE_TILING=auto) or always (VAE_TILING=always), and the
answer says so. Causal-cache models (Wan, Qwen-Image) tile space outside their time loop, a
walk per tile: not done here (their clips past the budget are refused with a size that fits)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.arrays import FloatArray
from app.config import Settings
from app.repository.manifest import Manifest
from app.serving.video.timeline import Caches, Step, StepRunner

# diffusers' defaults (tile_sample_min_height/width, tile_sample_stride_height/width), pixels.
DIFFUSERS_FRAME_TILES = {
    "AutoencoderKLHunyuanVideo": (256, 192),
    "AutoencoderKLLTXVideo": (512, 448),
}


@dataclass(frozen=True)
class FrameTiles:
    """Spatial tiles of `tile` pixels starting every `stride` pixels, for a model of
    `downscale` pixels a latent cell."""

    tile: int
    stride: int
    downscale: int

    @property
    def latent_tile(self) -> int:
        """A tile's side in latent cells."""
        return self.tile // self.downscale

    @property
    def latent_stride(self) -> int:
        """The cells between two tiles' starts."""
        return self.stride // self.downscale

    def needed(self, cells_high: int, cells_wide: int) -> bool:
        """Whether latents of this size are larger than one tile (diffusers' test)."""
        return cells_high > self.latent_tile or cells_wide > self.latent_tile

    @property
    def note(self) -> str:
        """What the X-VAE-Tiling header says of them."""
        return f"diffusers frame tiles {self.tile} px, stride {self.stride} px"


def frame_tiles_for(manifest: Manifest, settings: Settings) -> FrameTiles | None:
    """The model's frame tiles (None: VAE_TILING=never, or a model not tiled so)."""
    video, spec = manifest.video, manifest.spatial
    if settings.tiling == "never" or video is None or spec is None:
        return None
    if video.decode.scheme != "temporal_tiles":
        return None
    sizes = DIFFUSERS_FRAME_TILES.get(str(manifest.source.get("class", "")))
    if sizes is None:
        return None
    tiles = FrameTiles(sizes[0], sizes[1], spec.downscale)
    return tiles if tiles.latent_stride >= 1 else None


def tiled(run: StepRunner, tiles: FrameTiles) -> StepRunner:
    """`run` on each spatial tile of a step's latents, blended as diffusers' `tiled_decode`
    (steps of a temporal-tile walk: no caches); a step within one tile runs whole."""
    cells, step_cells = tiles.latent_tile, tiles.latent_stride
    blend, stride = tiles.tile - tiles.stride, tiles.stride

    async def run_tiled(step: Step) -> tuple[FloatArray, Caches]:
        z = step.frames
        height, width = z.shape[3], z.shape[4]
        if not tiles.needed(height, width):
            return await run(step)
        rows: list[list[FloatArray]] = []
        for i in range(0, height, step_cells):
            row = []
            for j in range(0, width, step_cells):
                part = z[:, :, :, i : i + cells, j : j + cells]
                out, _ = await run(Step(False, part, []))
                row.append(out)
            rows.append(row)
        joined = []
        for i, row in enumerate(rows):
            parts = []
            for j, tile in enumerate(row):
                if i > 0:
                    _blend(rows[i - 1][j], tile, blend, axis=3)
                if j > 0:
                    _blend(row[j - 1], tile, blend, axis=4)
                parts.append(tile[:, :, :, :stride, :stride])
            joined.append(np.concatenate(parts, axis=4))
        frames = np.concatenate(joined, axis=3)
        return frames[:, :, :, : height * tiles.downscale, : width * tiles.downscale], []

    return run_tiled


def _blend(before: FloatArray, tile: FloatArray, extent: int, axis: int) -> None:
    """Fades `tile`'s first `extent` rows (axis 3) or columns (axis 4) in from the last of
    `before`, in place, as diffusers' `blend_v` and `blend_h` do (later tiles blend with it)."""
    extent = min(before.shape[axis], tile.shape[axis], extent)
    faded, fading = np.moveaxis(tile, axis, 0), np.moveaxis(before, axis, 0)  # views
    for k in range(extent):
        weight = k / extent
        faded[k] = fading[-extent + k] * (1 - weight) + faded[k] * weight
