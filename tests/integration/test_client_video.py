"""vae_client on a video model: `vae serve` on loopback with a tiny random-weight HunyuanVideo
autoencoder imported from diffusers (8x in space, 4x in time, 16 latent channels), real HTTP,
real ONNX Runtime, the mp4s read back with PyAV."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest
from vae_client import AsyncClient, BadRequest, Client

from tests.support.processes import ServiceProcess, running_service, service_env

MODEL = "hunyuan"
CHANNELS, LATENT_FRAMES, CELLS = 16, 3, 4  # latents [16, 3, 4, 4]: 9 frames of 32x32
FRAMES, SIDE = 9, 32


@pytest.fixture(scope="module")
def video_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """`vae serve` whose default model is the tiny HunyuanVideo autoencoder."""
    from tests.support.video_models import import_video

    root = tmp_path_factory.mktemp("client-video")
    import_video(root / "models", root, "AutoencoderKLHunyuanVideo", MODEL)
    env = service_env(root / "models", root, default_model=MODEL)
    with running_service(env, root) as process:
        yield process


@pytest.fixture
def vae(video_service: ServiceProcess) -> Iterator[Client]:
    with Client(video_service.url, timeout=120) as client:
        yield client


def latents(seed: int = 0, clips: int | None = None) -> np.ndarray:
    """Random latents of one clip [C, T, h, w] (or a batch of `clips`)."""
    shape = (CHANNELS, LATENT_FRAMES, CELLS, CELLS)
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape if clips is None else (clips, *shape)).astype(np.float32)


def clip_frames(seed: int = 0) -> np.ndarray:
    """A clip uint8 [F, H, W, 3]: a bright square moving over a gradient."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    base = np.stack([xs, ys, 1 - xs], axis=-1) * rng.uniform(100, 200)
    frames = np.repeat(base[None], FRAMES, axis=0)
    for f in range(FRAMES):
        frames[f, 8:16, 2 + 2 * f : 10 + 2 * f] = 250
    return frames.astype(np.uint8)


def mp4_frames(data: bytes) -> list[np.ndarray]:
    """The frames of an mp4, as PyAV decodes them (rgb24 [H, W, 3])."""
    with av.open(io.BytesIO(data), "r") as container:
        assert container.streams.video[0].codec_context.name == "h264"
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_decode_video_gives_an_mp4_of_the_clips_frames(vae: Client) -> None:
    data = vae.decode_video(latents(), model=MODEL, fps=12)
    assert isinstance(data, bytes)
    frames = mp4_frames(data)
    assert len(frames) == FRAMES
    assert frames[0].shape == (SIDE, SIDE, 3)
    with av.open(io.BytesIO(data), "r") as container:
        assert container.streams.video[0].average_rate == 12


def test_decode_video_gives_frames_as_npy_and_raw(vae: Client) -> None:
    unit = vae.decode_video(latents(), format="npy")
    assert isinstance(unit, np.ndarray)
    assert unit.shape == (FRAMES, 3, SIDE, SIDE) and unit.dtype == np.float32
    assert unit.min() >= 0.0 and unit.max() <= 1.0
    raw = vae.decode_video(latents(), format="raw")
    assert isinstance(raw, np.ndarray)
    assert raw.shape == (FRAMES, SIDE, SIDE, 3) and raw.dtype == np.uint8
    np.testing.assert_allclose(raw / 255.0, unit.transpose(0, 2, 3, 1), atol=1 / 255 + 1e-6)
    batch = vae.decode_video(latents(clips=2), format="npy")
    assert isinstance(batch, np.ndarray)
    assert batch.shape == (2, FRAMES, 3, SIDE, SIDE)
    np.testing.assert_allclose(batch[0], unit, atol=1e-5)


def test_normalized_latents_are_undone_before_decoding(vae: Client) -> None:
    """A pipeline's latents are the means times the scaling factor (HunyuanVideo: no shift, no
    per-channel statistics): decoded with normalized=True they give the means' clip."""
    manifest = vae.model(MODEL)["versions"][0]["manifest"]
    scaling = float(manifest["scaling_factor"])
    assert scaling != 1.0
    means = latents()
    plain = vae.decode_video(means, format="npy")
    scaled = vae.decode_video(means * scaling, format="npy", normalized=True)
    assert isinstance(plain, np.ndarray) and isinstance(scaled, np.ndarray)
    np.testing.assert_allclose(scaled, plain, atol=1e-4)
    encoded = vae.encode_video(clip_frames())
    np.testing.assert_allclose(
        vae.encode_video(clip_frames(), normalized=True), encoded * scaling, rtol=1e-4, atol=1e-5
    )


def test_encode_video_takes_frames_an_mp4_and_its_path(vae: Client, tmp_path: Path) -> None:
    frames = clip_frames()
    means = vae.encode_video(frames, model=MODEL)
    assert means.shape == (CHANNELS, LATENT_FRAMES, CELLS, CELLS) and means.dtype == np.float32
    unit = frames.transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # float [F, C, H, W]
    np.testing.assert_allclose(vae.encode_video(unit), means, atol=1e-4)
    batch = vae.encode_video(np.stack([unit, unit[:, :, ::-1]]))
    assert batch.shape == (2, CHANNELS, LATENT_FRAMES, CELLS, CELLS)
    np.testing.assert_allclose(batch[0], means, atol=1e-4)
    mp4 = vae.decode_video(means)
    assert isinstance(mp4, bytes)
    from_bytes = vae.encode_video(mp4)
    (tmp_path / "clip.mp4").write_bytes(mp4)
    from_path = vae.encode_video(tmp_path / "clip.mp4")
    from_text = vae.encode_video(str(tmp_path / "clip.mp4"))
    assert from_bytes.shape == (CHANNELS, LATENT_FRAMES, CELLS, CELLS)
    np.testing.assert_array_equal(from_path, from_bytes)
    np.testing.assert_array_equal(from_text, from_bytes)


def test_stream_video_gives_the_mp4_in_chunks(vae: Client) -> None:
    chunks = list(vae.stream_video(latents(), model=MODEL))
    assert chunks and all(isinstance(chunk, bytes) for chunk in chunks)
    frames = mp4_frames(b"".join(chunks))
    assert len(frames) == FRAMES and frames[0].shape == (SIDE, SIDE, 3)


def test_bad_requests_raise_the_services_message(vae: Client) -> None:
    with pytest.raises(BadRequest) as wrong_channels:
        vae.decode_video(latents()[:4])
    assert wrong_channels.value.status == 422 and "channel" in wrong_channels.value.message
    with pytest.raises(BadRequest) as two_clips:
        vae.decode_video(latents(clips=2))  # an mp4 holds one clip
    assert two_clips.value.status == 422 and "one clip" in two_clips.value.message
    with pytest.raises(BadRequest) as frame_count:
        vae.encode_video(clip_frames()[:8])  # 8 is no (T - 1) * 4 + 1
    assert frame_count.value.status == 422 and frame_count.value.message
    with pytest.raises(BadRequest) as streamed:
        next(iter(vae.stream_video(latents()[:4])))
    assert streamed.value.status == 422
    with pytest.raises(ValueError, match="format"):
        vae.decode_video(latents(), format="gif")
    with pytest.raises(ValueError, match="C, T, h, w"):
        vae.decode_video(latents()[0])


def test_the_async_client_decodes_and_streams_the_same_clip(
    video_service: ServiceProcess, vae: Client
) -> None:
    async def both() -> tuple[bytes | np.ndarray, list[bytes]]:
        async with AsyncClient(video_service.url, timeout=120) as client:
            frames = await client.decode_video(latents(), format="npy")
            chunks = [chunk async for chunk in client.stream_video(latents())]
            return frames, chunks

    frames, chunks = asyncio.run(both())
    blocking = vae.decode_video(latents(), format="npy")
    assert isinstance(frames, np.ndarray) and isinstance(blocking, np.ndarray)
    np.testing.assert_allclose(frames, blocking, atol=1e-6)
    assert len(mp4_frames(b"".join(chunks))) == FRAMES
