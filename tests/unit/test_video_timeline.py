"""The time walk of a video graph (app/serving/video/timeline.py): over a fake step runner that
records each call, a causal walk feeds every call the caches of the call before and the right
frames, temporal tiles blend as diffusers' `blend_t` and are cut to the clip's frames, a short
clip is one call, and the counts the deadline and the memory estimate read match the walk;
then the tile walk against diffusers' own `_temporal_tiled_decode` and `_temporal_tiled_encode`
on a tiny random-weight AutoencoderKLHunyuanVideo."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from app.repository.manifest import TimeChunks
from app.serving.video.timeline import (
    Caches,
    Step,
    blend_in_time,
    largest_call_frames,
    steps_of,
    walk,
)

SCALE = 4  # output frames a latent frame (after the first)
CAUSAL = TimeChunks(scheme="causal_cache", chunk_frames=2, first_frames=1, caches=2)
# diffusers' HunyuanVideo defaults: tiles of 16 + 1 sample frames every 12, blended over 4.
TILES = TimeChunks(
    scheme="temporal_tiles", chunk_frames=5, stride_frames=3, blend_frames=4, out_stride=12
)


class RecordingDecoder:
    """A causal decoder's fake: each latent frame v becomes SCALE frames of v (the first call's
    first frame one frame), and every call gives caches naming the call that made them."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.given: list[Caches] = []

    async def __call__(self, step: Step) -> tuple[np.ndarray, Caches]:
        self.steps.append(step)
        frames = step.frames
        out = np.repeat(frames, SCALE, axis=2)
        if step.first:
            out = out[:, :, SCALE - 1 :]
        caches = [np.full((1,), len(self.steps), np.float32) for _ in range(CAUSAL.caches)]
        self.given.append(caches)
        return out, caches


class RecordingTiles:
    """A tile decoder's fake: a tile of t latent frames gives (t - 1) * SCALE + 1 frames, all
    equal to the tile's number (1, 2, ...) plus the output frame's index / 1000."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    async def __call__(self, step: Step) -> tuple[np.ndarray, Caches]:
        self.steps.append(step)
        n, _, t, h, w = step.frames.shape
        frames = (t - 1) * SCALE + 1
        values = len(self.steps) + np.arange(frames, dtype=np.float32) / 1000
        return np.broadcast_to(values[None, None, :, None, None], (n, 1, frames, h, w)).copy(), []


def clip(frames: int, channels: int = 2) -> np.ndarray:
    """Latents [1, C, T, 2, 3] whose value is the frame's index."""
    values = np.arange(frames, dtype=np.float32)[None, None, :, None, None]
    return np.broadcast_to(values, (1, channels, frames, 2, 3)).copy()


def out_frames(latent_frames: int) -> int:
    return (latent_frames - 1) * SCALE + 1


async def collect(pieces: AsyncIterator[np.ndarray]) -> list[np.ndarray]:
    return [piece async for piece in pieces]


def run_walk(x: np.ndarray, chunks: TimeChunks, runner: Any) -> list[np.ndarray]:
    return asyncio.run(collect(walk(x, chunks, out_frames(x.shape[2]), runner)))


def test_a_causal_walk_feeds_each_call_the_caches_of_the_call_before() -> None:
    runner = RecordingDecoder()
    run_walk(clip(7), CAUSAL, runner)
    assert [step.first for step in runner.steps] == [True, False, False, False]
    assert runner.steps[0].caches == []
    for step, before in zip(runner.steps[1:], runner.given, strict=False):
        assert step.caches is before


def test_a_causal_walk_gives_each_call_the_next_frames() -> None:
    runner = RecordingDecoder()
    run_walk(clip(7), CAUSAL, runner)
    given = [step.frames[0, 0, :, 0, 0].tolist() for step in runner.steps]
    assert given == [[0.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]


def test_a_causal_walk_yields_each_call_s_output_in_order() -> None:
    x = clip(6)
    pieces = run_walk(x, CAUSAL, RecordingDecoder())
    joined = np.concatenate(pieces, axis=2)
    expected = np.repeat(x, SCALE, axis=2)[:, :, SCALE - 1 :]
    np.testing.assert_array_equal(joined, expected)
    assert [piece.shape[2] for piece in pieces] == [1, 8, 8, 4]


def test_a_clip_no_longer_than_a_tile_is_one_call() -> None:
    runner = RecordingTiles()
    pieces = run_walk(clip(4), TILES, runner)
    assert len(runner.steps) == 1
    assert runner.steps[0].frames.shape[2] == 4
    assert sum(piece.shape[2] for piece in pieces) == out_frames(4)


def test_tiles_start_every_stride_and_take_a_tile_of_frames() -> None:
    runner = RecordingTiles()
    run_walk(clip(11), TILES, runner)
    starts = [step.frames[0, 0, 0, 0, 0] for step in runner.steps]
    assert starts == [0.0, 3.0, 6.0, 9.0]
    assert [step.frames.shape[2] for step in runner.steps] == [5, 5, 5, 2]
    assert all(step.caches == [] and not step.first for step in runner.steps)


def test_tiles_blend_into_the_tail_of_the_tile_before_as_blend_t_does() -> None:
    runner = RecordingTiles()
    joined = np.concatenate(run_walk(clip(10), TILES, runner), axis=2)[0, 0, :, 0, 0]
    # Tile 1 gives its frames 0..12; tile 2, its first frame dropped, fades in over 4 frames
    # from tile 1's frames 13..16 (not given out) and gives 12.
    first = 1 + np.arange(17) / 1000
    second = 2 + np.arange(1, 17) / 1000
    weights = np.arange(4) / 4
    blended = first[-4:] * (1 - weights) + second[:4] * weights
    np.testing.assert_allclose(joined[:13], first[:13], rtol=0, atol=1e-6)
    np.testing.assert_allclose(joined[13:17], blended, rtol=0, atol=1e-6)
    np.testing.assert_allclose(joined[17:25], second[4:12], rtol=0, atol=1e-6)


def test_a_walk_stops_once_it_has_every_frame() -> None:
    runner = RecordingTiles()
    run_walk(clip(10), TILES, runner)  # a fourth tile at 9 would give no frame past the first
    assert len(runner.steps) == 3


def test_tiles_are_cut_to_the_clip_s_frames() -> None:
    for latent_frames in (5, 6, 7, 9, 10, 13):
        pieces = run_walk(clip(latent_frames), TILES, RecordingTiles())
        assert sum(piece.shape[2] for piece in pieces) == out_frames(latent_frames)
        assert all(piece.shape[2] > 0 for piece in pieces)


def test_drop_last_drops_each_later_tile_s_last_frame() -> None:
    chunks = TILES.model_copy(update={"drop": "last"})
    runner = RecordingTiles()
    joined = np.concatenate(run_walk(clip(8), chunks, runner), axis=2)[0, 0, :, 0, 0]
    second = 2 + np.arange(0, 16) / 1000  # its last frame (16) dropped
    np.testing.assert_allclose(joined[17:25], second[4:12], rtol=0, atol=1e-6)


def test_blend_in_time_fades_over_the_extent_and_keeps_the_rest() -> None:
    before = np.zeros((1, 1, 6, 1, 1), np.float32)
    tile = np.ones((1, 1, 5, 1, 1), np.float32)
    blended = blend_in_time(before, tile, 4)[0, 0, :, 0, 0]
    np.testing.assert_allclose(blended, [0, 0.25, 0.5, 0.75, 1.0])
    assert tile[0, 0, 0, 0, 0] == 1.0  # the caller's tile is not changed


@pytest.mark.parametrize("chunks", [CAUSAL, TILES], ids=["causal", "tiles"])
def test_steps_of_and_largest_call_frames_match_the_walk(chunks: TimeChunks) -> None:
    for latent_frames in range(1, 15):
        runner = RecordingDecoder() if chunks is CAUSAL else RecordingTiles()
        run_walk(clip(latent_frames), chunks, runner)
        assert steps_of(chunks, latent_frames) >= len(runner.steps), latent_frames
        # The walk stops once it has every frame: a count may only be over by a tile the cut
        # makes useless.
        assert steps_of(chunks, latent_frames) <= len(runner.steps) + 1, latent_frames
        largest = max(step.frames.shape[2] for step in runner.steps)
        assert largest_call_frames(chunks, latent_frames) == largest, latent_frames


def test_a_reader_that_stops_early_runs_no_more_calls() -> None:
    runner = RecordingDecoder()

    async def first_piece() -> None:
        pieces = walk(clip(9), CAUSAL, out_frames(9), runner)
        await anext(pieces)
        await pieces.aclose()  # type: ignore[attr-defined]

    asyncio.run(first_piece())
    assert len(runner.steps) == 1


# ---- against diffusers --------------------------------------------------------------------------

HUNYUAN: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "down_block_types": ["HunyuanVideoDownBlock3D"] * 3,
    "up_block_types": ["HunyuanVideoUpBlock3D"] * 3,
    "block_out_channels": [8, 8, 8],
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "spatial_compression_ratio": 4,
    "temporal_compression_ratio": 4,
    "mid_block_add_attention": True,
}


def tiny_hunyuan() -> Any:
    torch = pytest.importorskip("torch")
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKLHunyuanVideo(**HUNYUAN).eval()
    # Tiles of 8 + 1 sample frames every 4 (2 + 1 latent frames every 1), blended over 4.
    vae.tile_sample_min_num_frames = 8
    vae.tile_sample_stride_num_frames = 4
    vae.use_tiling = False
    return vae


def hunyuan_chunks(vae: Any, encode: bool) -> TimeChunks:
    """The manifest's chunks for diffusers' framewise tiles (what the importer writes)."""
    ratio = vae.temporal_compression_ratio
    sample_min, sample_stride = vae.tile_sample_min_num_frames, vae.tile_sample_stride_num_frames
    if encode:
        latent_min, latent_stride = sample_min // ratio, sample_stride // ratio
        return TimeChunks(
            scheme="temporal_tiles", chunk_frames=sample_min + 1, stride_frames=sample_stride,
            blend_frames=latent_min - latent_stride, out_stride=latent_stride,
        )  # fmt: skip
    return TimeChunks(
        scheme="temporal_tiles", chunk_frames=sample_min // ratio + 1,
        stride_frames=sample_stride // ratio, blend_frames=sample_min - sample_stride,
        out_stride=sample_stride,
    )  # fmt: skip


def test_the_tile_walk_decodes_as_diffusers_temporal_tiled_decode() -> None:
    import torch

    vae = tiny_hunyuan()
    chunks = hunyuan_chunks(vae, encode=False)
    z = torch.randn(1, 4, 7, 4, 6, generator=torch.Generator().manual_seed(1))

    async def decode_tile(step: Step) -> tuple[np.ndarray, Caches]:
        with torch.no_grad():
            out = vae.decoder(vae.post_quant_conv(torch.from_numpy(step.frames)))
        return out.numpy(), []

    total = (z.shape[2] - 1) * 4 + 1
    with torch.no_grad():
        expected = vae.decode(z).sample.numpy()
    pieces = asyncio.run(collect(walk(z.numpy(), chunks, total, decode_tile)))
    assert len(pieces) > 2
    np.testing.assert_allclose(np.concatenate(pieces, axis=2), expected, rtol=0, atol=1e-5)


def test_the_tile_walk_encodes_as_diffusers_temporal_tiled_encode() -> None:
    import torch

    vae = tiny_hunyuan()
    chunks = hunyuan_chunks(vae, encode=True)
    x = torch.rand(1, 3, 21, 8, 12, generator=torch.Generator().manual_seed(2)) * 2 - 1

    async def encode_tile(step: Step) -> tuple[np.ndarray, Caches]:
        with torch.no_grad():
            out = vae.quant_conv(vae.encoder(torch.from_numpy(step.frames)))
        return out.numpy(), []

    with torch.no_grad():
        expected = vae._encode(x).numpy()
    pieces = asyncio.run(collect(walk(x.numpy(), chunks, expected.shape[2], encode_tile)))
    assert len(pieces) > 2
    np.testing.assert_allclose(np.concatenate(pieces, axis=2), expected, rtol=0, atol=1e-5)
