"""The video adapter's parts, each over fakes: reading latent clips and frames
(adapters/video_clips.py), undoing and applying the model's normalisation, the memory estimate
and the 413's size (adapters/video_budget.py), the lanes graph calls queue in (video/lanes.py),
the stream one call ahead (video/streams.py), and the adapter's answers over fake graphs."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.config import Settings
from app.repository.manifest import ImageSpec, Manifest, SpatialSpec, TimeChunks, VideoSpec
from app.runtime.choice import EngineChoice
from app.runtime.engines import EngineSpec
from app.serving.adapters.errors import ImageSizeError, InvalidLatent, InvalidRequest
from app.serving.adapters.requests import Accepts, DecodeCall, EncodeCall, NpyArray
from app.serving.adapters.spatial_sizes import OverMemoryBudget
from app.serving.adapters.video import VideoAdapter
from app.serving.adapters.video_budget import (
    VideoRequest,
    check_budget,
    largest_fitting,
    peak_bytes,
)
from app.serving.adapters.video_clips import (
    check_frames,
    check_latents,
    latent_clips,
    normalize,
    unit_clips,
    unnormalized,
)
from app.serving.cache.memory import LatentCache, MemoryBackend
from app.serving.deadlines import DeadlineExceeded
from app.serving.imaging import ImageError
from app.serving.inference import InferenceService
from app.serving.packing import PackedGraph
from app.serving.video.graphs import TimeGraph, VideoGraphs
from app.serving.video.lanes import Lane
from app.serving.video.streams import one_ahead

CAUSAL = TimeChunks(scheme="causal_cache", chunk_frames=1, first_frames=1, caches=1)
ENCODE = TimeChunks(scheme="causal_cache", chunk_frames=4, first_frames=1, caches=1)


def manifest(**values: Any) -> Manifest:
    fields: dict[str, Any] = {
        "name": "clip", "version": 1, "kind": "video_autoencoder", "latent_dim": 4,
        "likelihood": "gaussian", "image": ImageSpec(height=64, width=64, channels=3),
        "spatial": SpatialSpec(latent_channels=4, downscale=8, min_size=16),
        "video": VideoSpec(temporal_downscale=4, fps=16, decode=CAUSAL, encode=ENCODE),
        "value_range": (-1.0, 1.0), "scaling_factor": 0.5, "shift_factor": 0.25,
        "latents_mean": [0.1, -0.2, 0.3, 0.0], "latents_std": [1.5, 0.5, 2.0, 1.0],
        "source": {"class": "AutoencoderKLWan", "config": {"base_dim": 8, "dim_mult": [1]}},
        "created_at": "now",
    }  # fmt: skip
    return Manifest(**{**fields, **values})


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


# ---- latents and frames ---------------------------------------------------------------------


def test_one_clip_gets_a_batch_axis_and_clips_keep_theirs() -> None:
    one, batched = latent_clips(np.zeros((4, 2, 3, 3)))
    assert one.shape == (1, 4, 2, 3, 3) and not batched
    many, batched = latent_clips(np.zeros((2, 4, 2, 3, 3)))
    assert many.shape == (2, 4, 2, 3, 3) and batched
    with pytest.raises(InvalidLatent, match=r"\[C, T, h, w\]"):
        latent_clips(np.zeros((4, 3, 3)))


def test_latents_of_other_channels_are_refused_naming_the_model_s() -> None:
    with pytest.raises(InvalidLatent, match="4 channels"):
        check_latents(manifest(), np.zeros((1, 16, 2, 3, 3), np.float32), 10**6)


def test_latents_too_small_or_not_finite_are_refused() -> None:
    with pytest.raises(ImageSizeError, match="at least 2x2 cells"):
        check_latents(manifest(), np.zeros((1, 4, 2, 1, 3), np.float32), 10**6)
    bad = np.zeros((1, 4, 2, 3, 3), np.float32)
    bad[0, 1, 1, 1, 1] = np.inf
    with pytest.raises(InvalidLatent, match="NaN or infinity"):
        check_latents(manifest(), bad, 10**6)
    with pytest.raises(ImageSizeError, match="VAE_MAX_PIXELS"):
        check_latents(manifest(), np.zeros((1, 4, 1, 30, 30), np.float32), 100 * 100)


def test_normalised_latents_are_undone_as_the_brief_says() -> None:
    m = manifest()
    latents = np.random.default_rng(0).standard_normal((1, 4, 2, 3, 3)).astype(np.float32)
    mean = np.asarray(m.latents_mean, np.float32).reshape(1, -1, 1, 1, 1)
    std = np.asarray(m.latents_std, np.float32).reshape(1, -1, 1, 1, 1)
    expected = (latents / m.scaling_factor + m.shift_factor) * std + mean
    np.testing.assert_allclose(unnormalized(m, latents, True), expected, rtol=1e-6)


def test_given_factors_scale_and_shift_only() -> None:
    latents = np.ones((1, 4, 1, 2, 2), np.float32)
    np.testing.assert_allclose(unnormalized(manifest(), latents, False, 2.0, 0.5), 1.0)
    np.testing.assert_array_equal(unnormalized(manifest(), latents, False), latents)
    with pytest.raises(InvalidRequest, match="must not be 0"):
        unnormalized(manifest(), latents, False, 0.0)


def test_normalising_means_is_what_decoding_undoes() -> None:
    m = manifest()
    mu = np.random.default_rng(1).standard_normal((2, 4, 3, 2, 2)).astype(np.float32)
    sigma = np.ones_like(mu)
    normal, scaled = normalize(m, mu, sigma)
    np.testing.assert_allclose(unnormalized(m, normal, True), mu, rtol=1e-5, atol=1e-6)
    assert scaled is not None
    std = np.asarray(m.latents_std, np.float32).reshape(1, -1, 1, 1, 1)
    np.testing.assert_allclose(scaled, np.broadcast_to(m.scaling_factor / std, mu.shape))


def test_frames_are_read_in_either_channel_order() -> None:
    hwc = np.random.default_rng(2).integers(0, 256, (5, 16, 24, 3), dtype=np.uint8)
    clips = unit_clips(hwc)
    assert clips.shape == (1, 5, 3, 16, 24)
    np.testing.assert_allclose(clips[0, 2, 1], hwc[2, :, :, 1] / 255)
    chw = clips[0]
    np.testing.assert_array_equal(unit_clips(chw), clips)
    np.testing.assert_array_equal(unit_clips(np.stack([chw, chw])), np.concatenate([clips] * 2))


def test_frames_out_of_range_or_of_other_channels_are_refused() -> None:
    with pytest.raises(ImageError, match=r"\[0, 1\]"):
        unit_clips(np.full((5, 3, 16, 16), 2.0, np.float32))
    with pytest.raises(ImageError, match="3 channels"):
        unit_clips(np.zeros((5, 4, 16, 16), np.float32))
    with pytest.raises(ImageError, match=r"\[F, H, W, 3\]"):
        unit_clips(np.zeros((16, 16, 3), np.uint8))


def test_a_frame_count_no_latent_clip_gives_names_the_nearest() -> None:
    m = manifest()
    assert check_frames(m, np.zeros((1, 9, 3, 16, 16), np.float32), 10**6) == 3
    with pytest.raises(ImageSizeError, match="send 9 or 13 frames"):
        check_frames(m, np.zeros((1, 10, 3, 16, 16), np.float32), 10**6)
    with pytest.raises(ImageSizeError, match="multiples of 8"):
        check_frames(m, np.zeros((1, 9, 3, 20, 16), np.float32), 10**6)


# ---- memory ---------------------------------------------------------------------------------


def test_a_streamed_clip_s_peak_does_not_grow_with_its_frames() -> None:
    m = manifest()
    short = VideoRequest(1, 2, 5, 256, 256)
    long = VideoRequest(1, 200, 797, 256, 256)
    assert peak_bytes(m, CAUSAL, short) == peak_bytes(m, CAUSAL, long)
    whole = VideoRequest(1, 200, 797, 256, 256, whole=True)
    assert peak_bytes(m, CAUSAL, whole) > peak_bytes(m, CAUSAL, long)
    assert peak_bytes(m, CAUSAL, VideoRequest(1, 2, 5, 512, 512)) > 3 * peak_bytes(m, CAUSAL, short)


def test_past_the_budget_the_413_names_the_largest_size_of_the_clip_s_shape() -> None:
    m, budget = manifest(), settings(memory_budget_mb=64)
    request = VideoRequest(1, 5, 17, 1024, 2048)
    with pytest.raises(OverMemoryBudget, match=r"fits is (\d+)x(\d+)") as refused:
        check_budget(m, budget, CAUSAL, request)
    fits = largest_fitting(m, budget, CAUSAL, request)
    assert fits is not None
    width, height = fits
    assert f"{width}x{height}" in str(refused.value)
    assert abs(width / height - 2) < 0.1 and width % 8 == 0 == height % 8
    check_budget(m, budget, CAUSAL, VideoRequest(1, 5, 17, height, width))
    with pytest.raises(OverMemoryBudget):  # a cell more on the long side
        check_budget(m, budget, CAUSAL, VideoRequest(1, 5, 17, 2 * (width + 8) // 4, width + 8))


# ---- lanes and streams ------------------------------------------------------------------------


@dataclass
class SlowGraph:
    """A graph whose call takes `seconds`, records its feeds' tag and the most calls at once."""

    seconds: float = 0.02
    order: list[float] = field(default_factory=list)
    running: int = 0
    most: int = 0
    output_names: list[str] = field(default_factory=lambda: ["x"])
    engine: str = "onnxruntime"
    precision: str = "fp32"
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(self.seconds)
        with self.lock:
            self.running -= 1
            self.order.append(float(feeds["z"].flat[0]))
        return {"x": feeds["z"]}


def test_a_lane_runs_one_call_at_a_time_in_arrival_order() -> None:
    graph, lane = SlowGraph(), Lane("m", "decoder")

    async def scenario() -> None:
        calls = [lane.run(graph, {"z": np.full(1, i, np.float32)}) for i in range(6)]  # type: ignore[arg-type]
        await asyncio.gather(*calls)

    asyncio.run(scenario())
    assert graph.order == [0, 1, 2, 3, 4, 5] and graph.most == 1 and lane.ran == 6


def test_a_call_abandoned_while_computing_keeps_its_slot_until_it_ends() -> None:
    graph, lane = SlowGraph(seconds=0.2), Lane("m", "decoder")

    async def scenario() -> None:
        first = asyncio.ensure_future(lane.run(graph, {"z": np.zeros(1, np.float32)}))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        await lane.run(graph, {"z": np.ones(1, np.float32)})  # type: ignore[arg-type]

    asyncio.run(scenario())
    assert graph.most == 1 and graph.order == [0, 1]


def test_a_call_whose_deadline_passed_in_the_queue_is_not_run() -> None:
    graph, lane = SlowGraph(), Lane("m", "decoder")

    async def scenario() -> None:
        with pytest.raises(DeadlineExceeded):
            await lane.run(graph, {"z": np.zeros(1, np.float32)}, time.monotonic() - 1)  # type: ignore[arg-type]

    asyncio.run(scenario())
    assert lane.ran == 0 and not lane.busy


def test_a_stream_computes_one_piece_ahead_and_no_more() -> None:
    started: list[int] = []

    async def pieces() -> Any:
        for i in range(5):
            started.append(i)
            await asyncio.sleep(0)
            yield i

    async def scenario() -> None:
        stream = one_ahead(pieces())
        assert await anext(stream) == 0
        await asyncio.sleep(0.01)
        assert started == [0, 1]
        await stream.aclose()  # type: ignore[attr-defined]

    asyncio.run(scenario())
    assert started == [0, 1]


# ---- the adapter over fake graphs -------------------------------------------------------------


@dataclass
class RepeatGraph:
    """A causal decoder's fake: each latent frame's first channel, 4 frames of 8x8 pixels a
    cell for a chunk (1 for the first call), 3 channels; one cache."""

    first: bool
    output_names: list[str] = field(default_factory=lambda: ["x", "cache_out_0"])
    input_name: str = "z"
    engine: str = "onnxruntime"
    precision: str = "fp32"
    provider: str = "CPUExecutionProvider"

    def run_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        z = feeds["z"][:, :1]
        frames = np.repeat(z, 1 if self.first else 4, axis=2)
        pixels = np.repeat(np.repeat(frames, 8, axis=3), 8, axis=4)
        x = np.tanh(np.repeat(pixels, 3, axis=1))
        return {"x": x, "cache_out_0": np.zeros(1, np.float32)}


def fake_adapter() -> VideoAdapter:
    from app.serving.loaded import ModelParts

    m = manifest()
    spec = EngineSpec("onnxruntime", "fp32")
    choice = EngineChoice(spec, "fake")

    def direction(which: str, chunks: TimeChunks) -> TimeGraph:
        return TimeGraph(which, RepeatGraph(False), RepeatGraph(True), chunks, Lane("clip", which))  # type: ignore[arg-type]

    graphs = VideoGraphs(direction("decoder", CAUSAL), direction("encoder", ENCODE), choice, choice)
    packed = PackedGraph(graphs.decoder.chunk, (4,), False, choice)
    parts = ModelParts(m, Path("."), packed, packed, None, None, video=graphs)  # type: ignore[arg-type]
    service = InferenceService(LatentCache(MemoryBackend(8), 60.0), settings())
    return VideoAdapter(parts, service)


def test_decode_answers_mp4_unless_the_client_takes_arrays() -> None:
    adapter = fake_adapter()
    z = np.zeros((4, 3, 2, 2), np.float32)

    async def scenario() -> None:
        video = await adapter.decode(DecodeCall(NpyArray(z)))
        assert (video.format, video.frames, video.height, video.width) == ("mp4", 9, 16, 16)
        assert (video.fps, video.clips, video.batched, video.tiled) == (16.0, 1, False, None)
        assert video.value_range == (-1.0, 1.0) and video.channels == 3
        shapes = [piece.shape async for piece in video.pieces]
        assert shapes == [(1, 3, 1, 16, 16), (1, 3, 4, 16, 16), (1, 3, 4, 16, 16)]
        npy = await adapter.decode(DecodeCall(NpyArray(z), accepts=Accepts(npy=True), fps=30))
        assert (npy.format, npy.fps) == ("npy", 30.0)

    asyncio.run(scenario())


def test_mp4_of_two_clips_and_an_fps_past_240_are_refused() -> None:
    adapter = fake_adapter()
    two = np.zeros((2, 4, 3, 2, 2), np.float32)

    async def scenario() -> None:
        with pytest.raises(InvalidRequest, match="one clip"):
            await adapter.decode(DecodeCall(NpyArray(two)))
        video = await adapter.decode(DecodeCall(NpyArray(two), format="raw"))
        assert video.batched and video.clips == 2
        with pytest.raises(InvalidRequest, match="fps"):
            await adapter.decode(DecodeCall(NpyArray(two[0]), fps=241))
        with pytest.raises(InvalidRequest, match="fps"):
            await adapter.decode(DecodeCall(NpyArray(two[0]), fps=0))

    asyncio.run(scenario())


def test_encode_refuses_what_does_not_apply_to_a_video_model() -> None:
    adapter = fake_adapter()
    frames = np.zeros((5, 16, 16, 3), np.uint8)

    async def scenario() -> None:
        with pytest.raises(InvalidRequest, match="'samples'"):
            await adapter.encode(EncodeCall(NpyArray(frames), samples=2))

    asyncio.run(scenario())


# ---- the engine choice --------------------------------------------------------------------------


def choose(
    psnr: dict[str, float], seconds: dict[str, float], broken: str = ""
) -> tuple[str, EngineChoice]:
    from app.serving.video.loading import choose_direction

    specs = [
        EngineSpec("onnxruntime", "fp32"),
        EngineSpec("openvino", "fp32"),
        EngineSpec("openvino", "bf16"),
    ]

    def open_on(which: str, spec: EngineSpec) -> Any:
        if spec.label == broken:
            raise RuntimeError("cannot compile")
        return spec.label

    graph, choice = choose_direction(
        "decoder", specs, open_on, lambda g: psnr[g], lambda g: seconds[g]
    )
    return graph, choice


def test_the_fastest_candidate_that_passes_its_gate_serves() -> None:
    seconds = {"onnxruntime fp32": 3.0, "openvino fp32": 2.0, "openvino bf16": 1.0}
    graph, choice = choose({"openvino bf16": 45.0}, seconds)
    assert graph == "openvino bf16"
    assert "PSNR 45 dB >= 40" in choice.reason
    assert [t.seconds for t in choice.trials] == [3.0, 2.0, 1.0]


def test_a_candidate_below_the_gate_or_that_fails_does_not_serve() -> None:
    seconds = {"onnxruntime fp32": 3.0, "openvino fp32": 2.0, "openvino bf16": 1.0}
    graph, choice = choose({"openvino bf16": 31.0}, seconds, broken="openvino fp32")
    assert graph == "onnxruntime fp32"
    assert "openvino bf16 refused: PSNR 31 dB < 40" in choice.reason
    assert "openvino fp32 refused: did not run: cannot compile" in choice.reason


def test_a_stopped_lane_refuses_further_calls() -> None:
    from app.serving.video.lanes import LaneClosed

    graph, lane = SlowGraph(), Lane("m", "decoder")
    lane.stop()

    async def scenario() -> None:
        with pytest.raises(LaneClosed, match="unloaded"):
            await lane.run(graph, {"z": np.zeros(1, np.float32)})  # type: ignore[arg-type]

    asyncio.run(scenario())
    assert not lane.busy


# ---- frame tiles --------------------------------------------------------------------------------


def test_only_temporal_tile_models_of_diffusers_tile_their_frames() -> None:
    from app.serving.video.frame_tiles import frame_tiles_for

    tiles = TimeChunks(scheme="temporal_tiles", chunk_frames=5, stride_frames=3)
    video = VideoSpec(temporal_downscale=4, decode=tiles, encode=None)
    hunyuan = manifest(video=video, source={"class": "AutoencoderKLHunyuanVideo"})
    found = frame_tiles_for(hunyuan, settings())
    assert found is not None and (found.latent_tile, found.latent_stride) == (32, 24)
    assert frame_tiles_for(hunyuan, settings(tiling="never")) is None
    assert frame_tiles_for(manifest(), settings()) is None  # Wan: causal, refused instead


def test_a_step_within_one_tile_runs_whole_and_a_larger_one_in_tiles() -> None:
    from app.serving.video.frame_tiles import FrameTiles, tiled
    from app.serving.video.timeline import Step

    calls: list[tuple[int, ...]] = []

    async def upscale(step: Step) -> tuple[np.ndarray, list[np.ndarray]]:
        calls.append(step.frames.shape)
        z = step.frames[:, :1]
        return np.repeat(np.repeat(z, 8, axis=3), 8, axis=4), []

    run = tiled(upscale, FrameTiles(32, 24, 8))
    ones = np.ones((1, 4, 2, 4, 4), np.float32)
    asyncio.run(run(Step(False, ones, [])))
    assert calls == [(1, 4, 2, 4, 4)]
    calls.clear()
    out, _ = asyncio.run(run(Step(False, np.ones((1, 4, 2, 6, 5), np.float32), [])))
    assert calls == [(1, 4, 2, 4, 4), (1, 4, 2, 4, 2), (1, 4, 2, 3, 4), (1, 4, 2, 3, 2)]
    assert out.shape == (1, 1, 2, 48, 40)
    np.testing.assert_allclose(out, 1.0)  # blending equal tiles changes nothing
