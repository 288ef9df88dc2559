"""The video adapter in process (no HTTP) over tiny random-weight diffusers video autoencoders
imported for real (ONNX Runtime, diffusers): a clip decoded across several chunks equals
diffusers' own decode, streamed piece by piece; encode equals diffusers' latent mean; what the
adapter refuses (422) and what the memory budget refuses (413) with a size that fits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.repository.store import ModelRepository
from app.serving.adapters.errors import ImageSizeError, InvalidLatent, InvalidRequest
from app.serving.adapters.requests import (
    DecodeCall,
    EncodeCall,
    InterpolateCall,
    LatentPoint,
    NestedLatents,
    NpyArray,
    RawTensor,
    VideoFile,
)
from app.serving.adapters.results import DecodedVideo
from app.serving.adapters.spatial_sizes import OverMemoryBudget
from app.serving.adapters.video import VideoAdapter, VideoEncoding
from app.serving.registry import LoadedModel, ModelRegistry
from tests.support.in_process import settings_for

torch = pytest.importorskip("torch")
video_models = pytest.importorskip("tests.support.video_models")

TOLERANCE = 1e-3  # in [0, 1] units
CLASSES = (
    "AutoencoderKLHunyuanVideo",
    "AutoencoderKLWan",
    "AutoencoderKLLTXVideo",
    "AutoencoderKLQwenImage",
)


class Imported:
    """Tiny models imported once for the module, each in a repository of its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: dict[str, tuple[Path, Any]] = {}

    def __call__(self, class_name: str) -> tuple[Path, Any]:
        if class_name not in self.made:
            models = self.root / class_name / "models"
            models.mkdir(parents=True)
            vae = video_models.import_video(
                models, self.root / class_name / "work", class_name, "v"
            )
            self.made[class_name] = (models, _as_served(vae, models))
        return self.made[class_name]


def _as_served(vae: Any, models: Path) -> Any:
    """The diffusers model walking time as the import recorded (LTX-Video decodes whole clips
    unless its framewise tiles are on; the served graphs always walk tiles)."""
    source = ModelRepository(models).manifest("v", 1).source
    tiles = source.get("frame_tiles")
    if tiles:
        vae.use_framewise_decoding = True
        vae.use_framewise_encoding = True
        vae.tile_sample_min_num_frames = tiles["tile_sample_min_num_frames"]
        vae.tile_sample_stride_num_frames = tiles["tile_sample_stride_num_frames"]
    return vae


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Imported]:
    yield Imported(tmp_path_factory.mktemp("video"))


Scenario = Callable[[LoadedModel], Awaitable[None]]


def serve(models: Path, tmp_path: Path, scenario: Scenario, **settings: Any) -> None:
    """Runs `scenario` on model `v` loaded by a registry over `models` (fp32 ONNX Runtime)."""
    values = {"engine": "onnxruntime", "precision": "fp32", **settings}

    async def run() -> None:
        registry = ModelRegistry(ModelRepository(models), settings_for(models, tmp_path, **values))
        await registry.start()
        try:
            await scenario(await registry.resolve("v"))
        finally:
            await registry.stop()

    asyncio.run(run())


def adapter_of(model: LoadedModel) -> VideoAdapter:
    assert isinstance(model.adapter, VideoAdapter)
    return model.adapter


async def decoded(adapter: VideoAdapter, call: DecodeCall) -> tuple[DecodedVideo, np.ndarray]:
    video = await adapter.decode(call)
    pieces = [piece async for piece in video.pieces]
    return video, np.concatenate(pieces, axis=2)


def latents(model: LoadedModel, frames: int, height: int = 4, width: int = 6) -> np.ndarray:
    channels = model.manifest.spatial.latent_channels if model.manifest.spatial else 0
    rng = np.random.default_rng(7)
    return rng.standard_normal((1, channels, frames, height, width)).astype(np.float32)


def diffusers_decode(vae: Any, z: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return np.asarray(vae.decode(torch.from_numpy(z)).sample.numpy())


def unit(x: np.ndarray) -> np.ndarray:
    return np.clip(x / 2 + 0.5, 0, 1)


@pytest.mark.parametrize("class_name", CLASSES)
def test_a_clip_over_several_chunks_decodes_as_diffusers_does(
    class_name: str, imported: Imported, tmp_path: Path
) -> None:
    models, vae = imported(class_name)

    async def scenario(model: LoadedModel) -> None:
        adapter = adapter_of(model)
        z = latents(model, 7)
        video, got = await decoded(adapter, DecodeCall(NpyArray(z[0]), format="npy"))
        assert model.video is not None and model.video.decoder.lane.ran > 2  # several chunks
        want = diffusers_decode(vae, z)
        assert got.shape == want.shape == (1, 3, video.frames, video.height, video.width)
        assert np.abs(unit(got) - unit(want)).max() < TOLERANCE
        assert not video.batched and video.clips == 1 and video.format == "npy"

    serve(models, tmp_path, scenario)


def test_normalised_latents_decode_as_their_model_latents(
    imported: Imported, tmp_path: Path
) -> None:
    models, _ = imported("AutoencoderKLLTXVideo")

    async def scenario(model: LoadedModel) -> None:
        adapter, manifest = adapter_of(model), model.manifest
        assert manifest.latents_mean and manifest.latents_std
        z = latents(model, 2)
        mean = np.asarray(manifest.latents_mean, np.float32).reshape(1, -1, 1, 1, 1)
        std = np.asarray(manifest.latents_std, np.float32).reshape(1, -1, 1, 1, 1)
        pipeline = ((z - mean) / std - manifest.shift_factor) * manifest.scaling_factor
        _, plain = await decoded(adapter, DecodeCall(NpyArray(z), format="npy"))
        call = DecodeCall(NpyArray(pipeline), format="npy", normalized=True)
        video, undone = await decoded(adapter, call)
        assert video.batched
        np.testing.assert_allclose(undone, plain, rtol=0, atol=1e-4)

    serve(models, tmp_path, scenario)


def test_the_first_piece_comes_before_the_walk_has_run_its_last_call(
    imported: Imported, tmp_path: Path
) -> None:
    models, _ = imported("AutoencoderKLWan")

    async def scenario(model: LoadedModel) -> None:
        adapter = adapter_of(model)
        assert model.video is not None
        lane = model.video.decoder.lane
        video = await adapter.decode(DecodeCall(NpyArray(latents(model, 9)[0])))
        assert video.format == "mp4" and video.frames == 33
        before = lane.ran
        first = await anext(video.pieces)
        assert first.shape[2] == 1
        assert lane.ran - before <= 2  # this call, and at most the next one ahead
        rest = [piece async for piece in video.pieces]
        assert lane.ran - before == 9
        assert first.shape[2] + sum(piece.shape[2] for piece in rest) == 33

    serve(models, tmp_path, scenario)


def test_a_reader_that_stops_leaves_no_call_running(imported: Imported, tmp_path: Path) -> None:
    models, _ = imported("AutoencoderKLWan")

    async def scenario(model: LoadedModel) -> None:
        adapter = adapter_of(model)
        assert model.video is not None
        lane = model.video.decoder.lane
        video = await adapter.decode(DecodeCall(NpyArray(latents(model, 9)[0])))
        before = lane.ran
        await anext(video.pieces)
        await video.pieces.aclose()  # type: ignore[attr-defined]
        for _ in range(50):  # a call already in its thread finishes there
            if not lane.busy:
                break
            await asyncio.sleep(0.05)
        assert not lane.busy and not model.busy
        assert lane.ran - before <= 2
        # the lane is free for the next request
        again = await adapter.decode(DecodeCall(NpyArray(latents(model, 2)[0]), format="npy"))
        assert sum([piece.shape[2] async for piece in again.pieces]) == 5

    serve(models, tmp_path, scenario)


def test_concurrent_clips_take_turns_chunk_by_chunk(imported: Imported, tmp_path: Path) -> None:
    models, _ = imported("AutoencoderKLWan")

    async def scenario(model: LoadedModel) -> None:
        adapter = adapter_of(model)
        order: list[int] = []

        async def read(clip: int) -> np.ndarray:
            video = await adapter.decode(DecodeCall(NpyArray(latents(model, 5)[0]), format="npy"))
            pieces = []
            async for piece in video.pieces:
                order.append(clip)
                pieces.append(piece)
            return np.concatenate(pieces, axis=2)

        first, second = await asyncio.gather(read(0), read(1))
        np.testing.assert_array_equal(first, second)
        assert order[:4].count(0) < 4 and order[:4].count(1) < 4  # neither waits for the other

    serve(models, tmp_path, scenario)


@pytest.mark.parametrize("class_name", CLASSES)
def test_encode_gives_diffusers_latent_mean(
    class_name: str, imported: Imported, tmp_path: Path
) -> None:
    models, vae = imported(class_name)

    async def scenario(model: LoadedModel) -> None:
        adapter, manifest = adapter_of(model), model.manifest
        assert manifest.video is not None and manifest.spatial is not None
        step, channels = manifest.spatial.downscale, manifest.spatial.latent_channels
        count = manifest.video.frames(3)
        rng = np.random.default_rng(3)
        frames = rng.integers(0, 256, (count, 4 * step, 6 * step, 3), dtype=np.uint8)
        encoding = await adapter.encode(EncodeCall(NpyArray(frames)))  # [F, H, W, C]
        assert isinstance(encoding, VideoEncoding)
        x = torch.from_numpy(frames.astype(np.float32) / 255 * 2 - 1).permute(3, 0, 1, 2)[None]
        with torch.no_grad():
            want = vae.encode(x).latent_dist
        assert encoding.mean.shape == tuple(want.mean.shape) == (1, channels, 3, 4, 6)
        np.testing.assert_allclose(encoding.mean, want.mean.numpy(), rtol=0, atol=1e-3)
        assert encoding.sigma is not None
        np.testing.assert_allclose(encoding.sigma, want.std.numpy(), rtol=1e-3, atol=1e-3)
        assert encoding.fields()["latent_shape"] == [channels, 3, 4, 6]

    serve(models, tmp_path, scenario)


def test_normalised_encode_is_what_normalised_decode_undoes(
    imported: Imported, tmp_path: Path
) -> None:
    models, _ = imported("AutoencoderKLLTXVideo")

    async def scenario(model: LoadedModel) -> None:
        adapter = adapter_of(model)
        frames = np.random.default_rng(4).random((1, 9, 3, 32, 64), np.float32)  # [N, F, C, H, W]
        plain = await adapter.encode(EncodeCall(NpyArray(frames)))
        normal = await adapter.encode(EncodeCall(NpyArray(frames), normalized=True))
        assert normal.fields()["normalized"] and normal.fields()["latents_std"]
        _, a = await decoded(adapter, DecodeCall(NpyArray(plain.mean), format="npy"))
        call = DecodeCall(NpyArray(normal.mean), format="npy", normalized=True)
        _, b = await decoded(adapter, call)
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)

    serve(models, tmp_path, scenario)


def test_a_video_file_encodes_as_its_frames(imported: Imported, tmp_path: Path) -> None:
    from app.serving.video import mp4

    models, _ = imported("AutoencoderKLHunyuanVideo")

    async def scenario(model: LoadedModel) -> None:
        adapter = adapter_of(model)
        frames = np.zeros((9, 32, 48, 3), np.uint8)
        frames[:, :, :24] = 200
        data = mp4.write_mp4(frames, 24)
        read = mp4.read_frames(data, 100, 10**8)
        from_file = await adapter.encode(EncodeCall(VideoFile(data)))
        from_frames = await adapter.encode(EncodeCall(NpyArray(read)))
        np.testing.assert_array_equal(from_file.mean, from_frames.mean)

    serve(models, tmp_path, scenario)


def test_what_the_adapter_refuses(imported: Imported, tmp_path: Path) -> None:
    models, _ = imported("AutoencoderKLHunyuanVideo")

    async def scenario(model: LoadedModel) -> None:
        adapter = adapter_of(model)
        z = latents(model, 3)
        with pytest.raises(InvalidLatent, match="16 channels"):
            await adapter.decode(DecodeCall(NpyArray(z[:, :4])))
        with pytest.raises(InvalidLatent, match=r"\[C, T, h, w\]"):
            await adapter.decode(DecodeCall(NpyArray(z[0, :, 0])))
        bad = z.copy()
        bad[0, 0, 0, 0, 0] = np.nan
        with pytest.raises(InvalidLatent, match="NaN"):
            await adapter.decode(DecodeCall(NpyArray(bad)))
        with pytest.raises(ImageSizeError, match="at least"):
            await adapter.decode(DecodeCall(NpyArray(z[:, :, :, :0])))
        two = np.concatenate([z, z])
        with pytest.raises(InvalidRequest, match="one clip"):
            await adapter.decode(DecodeCall(NpyArray(two), format="mp4"))
        with pytest.raises(InvalidRequest, match="fps"):
            await adapter.decode(DecodeCall(NpyArray(z), fps=1000))
        with pytest.raises(InvalidRequest, match="format"):
            await adapter.decode(DecodeCall(NpyArray(z), format="gif"))
        frames = np.zeros((10, 32, 48, 3), np.uint8)
        with pytest.raises(ImageSizeError, match="9 or 13"):
            await adapter.encode(EncodeCall(NpyArray(frames)))
        raw = RawTensor(
            np.zeros((9, 30, 48, 3), np.uint8).tobytes(), ["9", "30", "48", "3"], "uint8"
        )
        with pytest.raises(ImageSizeError, match="multiples of 8"):
            await adapter.encode(EncodeCall(raw))
        with pytest.raises(InvalidLatent):
            await adapter.decode(DecodeCall(NestedLatents([[1.0, 2.0], [3.0]])))

    serve(models, tmp_path, scenario)


def test_past_the_memory_budget_a_clip_is_refused_naming_a_size_that_fits(
    imported: Imported, tmp_path: Path
) -> None:
    models, _ = imported("AutoencoderKLWan")  # no frame tiles: refused, not tiled

    async def scenario(model: LoadedModel) -> None:
        adapter = adapter_of(model)
        large = latents(model, 5, 64, 64)  # 512 x 512 frames
        with pytest.raises(
            OverMemoryBudget, match=r"the largest frame size .* is (\d+)x(\d+)"
        ) as refused:
            await adapter.decode(DecodeCall(NpyArray(large[0]), format="npy"))
        side = int(str(refused.value).rsplit(" ", 1)[-1].split("x")[0])
        assert 8 <= side < 512
        fits = latents(model, 5, side // 8, side // 8)  # 17 frames
        _, got = await decoded(adapter, DecodeCall(NpyArray(fits[0]), format="npy"))
        assert got.shape[-1] == side

    serve(models, tmp_path, scenario, memory_budget_mb=64)


def test_interpolation_gives_the_latent_path_and_decodes_nothing(
    imported: Imported, tmp_path: Path
) -> None:
    models, _ = imported("AutoencoderKLHunyuanVideo")

    async def scenario(model: LoadedModel) -> None:
        adapter = adapter_of(model)
        start, end = latents(model, 2)[0], -latents(model, 2)[0]
        call = InterpolateCall(LatentPoint(start.tolist()), LatentPoint(end.tolist()), 3, "lerp")
        drawn = await adapter.interpolate(call)
        assert drawn.latents.shape == (3, *start.shape)
        np.testing.assert_allclose(drawn.latents[1], 0, atol=1e-6)
        assert drawn.images.size == 0

    serve(models, tmp_path, scenario)


def test_exact_calls_run_on_fp32_where_a_lower_precision_was_chosen(
    imported: Imported, tmp_path: Path
) -> None:
    models, vae = imported("AutoencoderKLWan")

    async def scenario(model: LoadedModel) -> None:
        adapter = adapter_of(model)
        assert model.video is not None
        z = latents(model, 3)
        _, exact = await decoded(adapter, DecodeCall(NpyArray(z), format="npy", exact=True))
        lazy = model.video.exact.get("decoder")
        if model.video.decoder_choice.spec.reference:
            assert lazy is None  # fp32 chosen: exact calls run on it
        else:
            assert lazy is not None and lazy.opened is not None
            assert lazy.opened.chunk.precision == "fp32"
        assert np.abs(unit(exact) - unit(diffusers_decode(vae, z))).max() < TOLERANCE

    serve(models, tmp_path, scenario, engine="auto", precision="auto")


@pytest.mark.parametrize("class_name", ["AutoencoderKLHunyuanVideo", "AutoencoderKLLTXVideo"])
def test_frames_past_a_tile_decode_as_diffusers_tiled_decode(
    class_name: str, imported: Imported, tmp_path: Path
) -> None:
    models, vae = imported(class_name)

    async def scenario(model: LoadedModel) -> None:
        adapter, spec = adapter_of(model), model.manifest.spatial
        assert spec is not None
        tile_cells = vae.tile_sample_min_height // spec.downscale
        cells = tile_cells + tile_cells // 2  # two tiles a side, blended
        z = latents(model, 5, cells, cells + 2)
        video, got = await decoded(adapter, DecodeCall(NpyArray(z), format="npy"))
        assert video.tiled is not None and "frame tiles" in video.tiled
        vae.enable_tiling()
        try:
            want = diffusers_decode(vae, z)
        finally:
            vae.disable_tiling()
        assert got.shape == want.shape
        assert np.abs(unit(got) - unit(want)).max() < TOLERANCE

    serve(models, tmp_path, scenario, tiling="always")


def test_frames_too_large_for_the_budget_in_one_call_are_tiled_where_the_model_tiles(
    imported: Imported, tmp_path: Path
) -> None:
    models, _ = imported("AutoencoderKLHunyuanVideo")

    async def scenario(model: LoadedModel) -> None:
        adapter = adapter_of(model)
        small, _ = await decoded(adapter, DecodeCall(NpyArray(latents(model, 5, 8, 8))))
        assert small.tiled is not None and "frame tiles" not in small.tiled  # time tiles only
        video, got = await decoded(adapter, DecodeCall(NpyArray(latents(model, 5, 40, 40))))
        assert video.tiled is not None and "frame tiles 256 px" in video.tiled
        assert got.shape == (1, 3, 17, 320, 320)

    serve(models, tmp_path, scenario, memory_budget_mb=400)
