"""Tiling: diffusers' own tiles, blend and loop order for an AutoencoderKL (compared with its
`tiled_decode` and `_tiled_encode` on a tiny model), exact halo tiles for an AutoencoderTiny
(compared with its untiled output), and the plan the memory budget decides: one piece, tiles, or a
413 that names the largest size that fits."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from app.config import Settings
from app.repository.manifest import ImageSpec, Manifest, SpatialSpec
from app.serving.adapters.spatial_sizes import OverMemoryBudget, plan_run
from app.serving.deadlines import DeadlineExceeded
from app.serving.tiling import (
    HaloPlan,
    RunPlan,
    TilePlan,
    diffusers_decode_plan,
    diffusers_encode_plan,
    run_plan,
    tile_plan,
    tiny_halo_cells,
)

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")

KL = {
    "down_block_types": ["DownEncoderBlock2D"] * 2,
    "up_block_types": ["UpDecoderBlock2D"] * 2,
    "block_out_channels": [8, 16],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "sample_size": 32,
}
TINY = {
    "encoder_block_out_channels": [8, 8, 8],
    "decoder_block_out_channels": [8, 8, 8],
    "num_encoder_blocks": [1, 2, 1],
    "num_decoder_blocks": [1, 2, 1],
    "latent_channels": 4,
}


def manifest(kind: str, config: dict[str, Any], downscale: int) -> Manifest:
    return Manifest(
        name="m", version=1, kind="autoencoder", latent_dim=4, likelihood="gaussian",
        image=ImageSpec(height=64, width=64, channels=3), created_at="now",
        spatial=SpatialSpec(latent_channels=4, downscale=downscale, min_size=downscale),
        source={"class": kind, "config": config},
    )  # fmt: skip


def settings(**values: Any) -> Settings:
    return Settings(models_dir="/nonexistent", **values)


def _numpy_run(module: Any) -> Any:
    async def run(rows: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(rows)).numpy()

    return run


def test_the_kl_tiles_are_diffusers_tiled_decode_and_encode_to_float_rounding() -> None:
    torch.manual_seed(0)
    model = diffusers.AutoencoderKL(**KL).eval()
    model.enable_tiling()
    z = torch.randn(2, 4, 37, 53)  # 74 x 106 pixels: 4 x 5 tiles, the last ones narrower
    x = torch.rand(1, 3, 74, 106) * 2 - 1
    with torch.no_grad():
        theirs = model.decode(z).sample.numpy()
        moments = model._encode(x).numpy()  # tiled: quant_conv's output, mean then log-variance

    def decoder(t: Any) -> Any:
        return model.decoder(model.post_quant_conv(t))

    def encoder(t: Any) -> Any:
        return model.quant_conv(model.encoder(t))

    plan = tile_plan(manifest("AutoencoderKL", KL, 2), settings(), encode=False)
    assert plan == diffusers_decode_plan(32, 2, 0.25) and isinstance(plan, TilePlan)
    assert (plan.tile, plan.stride, plan.blend, plan.limit) == (16, 12, 8, 24)
    ours = asyncio.run(run_plan(z.numpy(), RunPlan(plan, 3, 0), _numpy_run(decoder)))
    assert ours.shape == theirs.shape == (2, 3, 74, 106)
    assert np.abs(ours - theirs).max() < 1e-5
    encode = diffusers_encode_plan(32, 2, 0.25)
    assert tile_plan(manifest("AutoencoderKL", KL, 2), settings(), encode=True) == encode
    ours = asyncio.run(run_plan(x.numpy(), RunPlan(encode, 2, 0), _numpy_run(encoder)))
    assert ours.shape == moments.shape == (1, 8, 37, 53)
    assert np.abs(ours - moments).max() < 1e-5
    assert plan.note == "diffusers tiles 32 px, overlap 0.25"


def test_tiny_autoencoder_halo_tiles_are_exact() -> None:
    """TAESD-style models see a bounded neighbourhood: tiles with a halo as wide as it, cropped to
    their cores, give the untiled output (float rounding aside; measured exact from 8 cells of
    halo on, the radius worked out is 11); a halo of 2 cells does not."""
    torch.manual_seed(0)
    model = diffusers.AutoencoderTiny(**TINY).eval()
    z = torch.randn(1, 4, 30, 44)
    x = torch.rand(1, 3, 120, 176)
    with torch.no_grad():
        whole = model.decoder(z).numpy()
        latents = model.encoder(x).numpy()
    plan = tile_plan(manifest("AutoencoderTiny", TINY, 4), settings(tile_size=32), encode=False)
    assert (
        isinstance(plan, HaloPlan) and plan.core == 8 and plan.halo == tiny_halo_cells(TINY, False)
    )
    decode = _numpy_run(model.decoder)
    tiled = asyncio.run(run_plan(z.numpy(), RunPlan(plan, 4, 0), decode))
    assert tiled.shape == whole.shape and np.abs(tiled - whole).max() < 1e-4
    short = HaloPlan(plan.core, 2, plan.scale)
    cut = asyncio.run(run_plan(z.numpy(), RunPlan(short, 4, 0), decode))
    assert np.abs(cut - whole).max() > 1e-3
    encode = tile_plan(manifest("AutoencoderTiny", TINY, 4), settings(tile_size=32), encode=True)
    assert isinstance(encode, HaloPlan)
    tiled = asyncio.run(run_plan(x.numpy(), RunPlan(encode, 4, 0), _numpy_run(model.encoder)))
    assert tiled.shape == latents.shape and np.abs(tiled - latents).max() < 1e-4
    assert plan.note == "exact tiles 32 px, halo " + str(plan.halo * 4) + " px"


def test_the_budget_decides_one_piece_tiles_or_a_413_with_the_largest_size() -> None:
    kl = manifest("AutoencoderKL", KL, 2)
    latents = (1, 4, 64, 64)  # 128 x 128: 4096 tokens, two 64 MiB score matrices
    assert plan_run(kl, settings(), latents, encode=False).tiles is None
    tiled = plan_run(kl, settings(memory_budget_mb=64), latents, encode=False)
    assert isinstance(tiled.tiles, TilePlan) and tiled.per_call >= 1
    small = (1, 4, 12, 12)  # one tile: nothing to cut, fits anyway
    assert plan_run(kl, settings(memory_budget_mb=64), small, encode=False).tiles is None
    always = plan_run(kl, settings(tiling="always"), latents, encode=False)
    assert isinstance(always.tiles, TilePlan)
    with pytest.raises(OverMemoryBudget, match=r"tiling is off.*largest that fits is (\d+)x\1"):
        plan_run(kl, settings(memory_budget_mb=64, tiling="never"), latents, encode=False)
    with pytest.raises(OverMemoryBudget) as refused:
        plan_run(kl, settings(memory_budget_mb=64, tile_size=0), latents, encode=False)
    side = int(str(refused.value).rsplit("is ", 1)[1].split("x")[0])
    never = settings(memory_budget_mb=64, tiling="never")
    assert plan_run(kl, never, (1, 4, side // 2, side // 2), encode=False).tiles is None
    with pytest.raises(OverMemoryBudget):
        plan_run(kl, never, (1, 4, side // 2 + 1, side // 2 + 1), encode=False)


def test_a_tiled_run_stops_at_its_next_tile_once_its_deadline_passed() -> None:
    calls: list[int] = []

    async def run(rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        return rows.repeat(2, axis=2).repeat(2, axis=3)

    plan = RunPlan(diffusers_decode_plan(32, 2, 0.25), 1, 0)
    z = np.zeros((1, 4, 40, 40), np.float32)
    with pytest.raises(DeadlineExceeded):
        asyncio.run(run_plan(z, plan, run, time.monotonic() - 1))
    assert calls == []
    assert asyncio.run(run_plan(z, plan, run, time.monotonic() + 60)).shape == (1, 4, 80, 80)
    assert calls == [1] * 16


def test_tiles_too_small_to_step_through_an_image_are_no_tiles() -> None:
    """A config whose sample_size makes one-cell latent tiles (stride 0) is not tiled: a request
    that needs tiles is then refused by the budget rather than looping."""
    tiny_tiles = manifest("AutoencoderKL", {**KL, "sample_size": 2}, 2)
    assert tile_plan(tiny_tiles, settings(), encode=False) is None
    with pytest.raises(OverMemoryBudget, match="tiling is off"):
        plan_run(tiny_tiles, settings(memory_budget_mb=64), (1, 4, 64, 64), encode=False)
