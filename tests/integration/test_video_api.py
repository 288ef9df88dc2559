"""/decode and /encode on a video model over real HTTP: `vae serve` on loopback with a tiny
random-weight HunyuanVideo autoencoder (8x in space, 4x in time, 16 latent channels) imported
from diffusers, its answers compared with what the same diffusers model computes locally.

mp4 answers are read back with PyAV. Their quality is measured on luma (Y, BT.601), as video
PSNR is: H.264 in yuv420p halves the chroma resolution, and a random-weight decoder's frames are
close to noise, so their colour detail is lost to subsampling alone (about 26 dB in RGB against
41 dB in Y at crf 18); a real decoder's smooth frames keep both above 36 dB (see
tests/unit/test_video_mp4.py)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from app.repository.store import ModelRepository
from tests.support.processes import ServiceProcess, running_service, service_env

torch = pytest.importorskip("torch")
video_models = pytest.importorskip("tests.support.video_models")

MODEL = "hunyuan"
CHANNELS, DOWNSCALE, TEMPORAL = 16, 8, 4
LATENT_FRAMES, CELLS_H, CELLS_W = 3, 4, 6  # non-square: 9 frames of 32x48
FRAMES, HEIGHT, WIDTH = 9, 32, 48
TOLERANCE = 1e-3  # frames in [0, 1]
NPY = "application/x-npy"
RAW = "application/octet-stream"


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A repository with the tiny HunyuanVideo model imported as `hunyuan`, and the diffusers
    model walking time in the tiles the import recorded (as the served graphs do)."""
    root = tmp_path_factory.mktemp("video-api")
    models = root / "models"
    vae = video_models.import_video(models, root, "AutoencoderKLHunyuanVideo", MODEL)
    tiles = ModelRepository(models).manifest(MODEL, 1).source.get("frame_tiles")
    if tiles:
        vae.use_framewise_decoding = vae.use_framewise_encoding = True
        vae.tile_sample_min_num_frames = tiles["tile_sample_min_num_frames"]
        vae.tile_sample_stride_num_frames = tiles["tile_sample_stride_num_frames"]
    return models, vae


@pytest.fixture(scope="module")
def wan(imported: tuple[Path, Any]) -> Any:
    """The tiny Wan autoencoder (causal time chunks, per-channel latent statistics) imported as
    `wan` into the same repository."""
    models = imported[0]
    return video_models.import_video(models, models.parent, "AutoencoderKLWan", "wan")


OTHERS = {"ltx": "AutoencoderKLLTXVideo", "qwen": "AutoencoderKLQwenImage"}


@pytest.fixture(scope="module")
def others(imported: tuple[Path, Any]) -> dict[str, Any]:
    """The tiny LTX-Video (32x in space, 8x in time) and Qwen-Image (clips of one frame)
    autoencoders imported into the same repository, by name."""
    models = imported[0]
    return {
        name: video_models.import_video(models, models.parent, class_name, name)
        for name, class_name in OTHERS.items()
    }


@pytest.fixture(scope="module")
def service(
    imported: tuple[Path, Any],
    wan: Any,
    others: dict[str, Any],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("video-api-serve")
    # fp32: the answers are held to diffusers' within 1e-3 (auto may pick bf16 on an AMX CPU)
    env = service_env(imported[0], root, default_model=MODEL, threads="1", precision="fp32")
    with running_service(env, root) as process:
        yield process


@pytest.fixture
def http(service: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=120) as client:
        yield client


def latents(seed: int = 0, frames: int = LATENT_FRAMES, clips: int | None = None) -> np.ndarray:
    """Random latents of one clip [C, T, h, w] (or a batch of `clips`)."""
    shape = (CHANNELS, frames, CELLS_H, CELLS_W)
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape if clips is None else (clips, *shape)).astype(np.float32)


def local_frames(vae: Any, z: np.ndarray) -> np.ndarray:
    """diffusers' decode of latents [N, C, T, h, w] as frames [N, F, C, H, W] in [0, 1]."""
    with torch.no_grad():
        sample = vae.decode(torch.from_numpy(z)).sample.numpy()
    return np.clip((np.moveaxis(sample, 2, 1) + 1) / 2, 0, 1)


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def decode(http: httpx.Client, z: np.ndarray, accept: str = "*/*", **params: Any) -> httpx.Response:
    return http.post(
        "/decode",
        content=npy(z),
        params=params,
        headers={"content-type": NPY, "accept": accept},
    )


def mp4_frames(data: bytes) -> tuple[np.ndarray, Any]:
    """The frames FFmpeg reads from an mp4 (uint8 [F, H, W, 3]) and its frame rate."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return np.array(frames), stream.average_rate


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_mp4_holds_diffusers_frames(http: httpx.Client, imported: tuple[Path, Any]) -> None:
    z = latents()
    answer = decode(http, z)  # no format, no Accept: mp4
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "video/mp4"
    assert answer.headers["x-model"] == MODEL and answer.headers["x-model-version"] == "1"
    assert answer.headers["x-vae-frames"] == str(FRAMES)
    assert answer.headers["x-vae-fps"] == "24"
    frames, rate = mp4_frames(answer.content)
    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert rate == 24
    expected = local_frames(imported[1], z[None])[0].transpose(0, 2, 3, 1)
    assert psnr(luma(frames / 255.0), luma(expected)) >= 30.0


@pytest.mark.parametrize("name", list(OTHERS))
def test_every_family_decodes_to_an_mp4_of_diffusers_frames(
    http: httpx.Client, imported: tuple[Path, Any], others: dict[str, Any], name: str
) -> None:
    manifest = ModelRepository(imported[0]).manifest(name, 1)
    assert manifest.video is not None and manifest.spatial is not None
    latent_frames = 2 if manifest.video.temporal_downscale > 1 and name != "qwen" else 1
    shape = (1, manifest.spatial.latent_channels, latent_frames, 2, 3)
    z = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    answer = decode(http, z[0], model=name)
    assert answer.status_code == 200, answer.text
    frames, _ = mp4_frames(answer.content)
    scale = manifest.spatial.downscale
    count = manifest.video.frames(latent_frames)
    assert frames.shape == (count, 2 * scale, 3 * scale, 3)
    assert answer.headers["x-vae-frames"] == str(count)
    expected = local_frames(others[name], z)[0].transpose(0, 2, 3, 1)
    assert psnr(luma(frames / 255.0), luma(expected)) >= 30.0


def test_mp4_at_the_fps_asked_for(http: httpx.Client) -> None:
    answer = decode(http, latents(), format="mp4", fps="12.5")
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-vae-fps"] == "12.5"
    assert mp4_frames(answer.content)[1] == 12.5


def test_npy_frames_equal_diffusers(http: httpx.Client, imported: tuple[Path, Any]) -> None:
    z = latents(1)
    answer = decode(http, z, accept=NPY)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == NPY
    assert int(answer.headers["content-length"]) == len(answer.content)  # streamed, sized
    frames = np.load(io.BytesIO(answer.content))
    assert frames.dtype == np.float32 and frames.shape == (FRAMES, 3, HEIGHT, WIDTH)
    np.testing.assert_allclose(frames, local_frames(imported[1], z[None])[0], atol=TOLERANCE)


def test_pipeline_latents_are_normalised_back(
    http: httpx.Client, imported: tuple[Path, Any]
) -> None:
    vae, z = imported[1], latents(2)
    scaled = z * np.float32(vae.config.scaling_factor)  # as a HunyuanVideo pipeline holds them
    body = {"latents": scaled.tolist(), "format": "npy", "normalized": True}
    answer = http.post("/decode", json=body)
    assert answer.status_code == 200, answer.text
    frames = np.load(io.BytesIO(answer.content))
    np.testing.assert_allclose(frames, local_frames(vae, z[None])[0], atol=TOLERANCE)


def test_raw_frames_are_uint8_channels_last(http: httpx.Client) -> None:
    z = latents(3)
    raw = decode(http, z, format="raw")
    assert raw.status_code == 200, raw.text
    assert json.loads(raw.headers["shape"]) == [FRAMES, HEIGHT, WIDTH, 3]
    assert raw.headers["dtype"] == "uint8"
    frames = np.frombuffer(raw.content, np.uint8).reshape(FRAMES, HEIGHT, WIDTH, 3)
    unit = np.load(io.BytesIO(decode(http, z, format="npy").content))
    assert np.abs(frames / 255.0 - unit.transpose(0, 2, 3, 1)).max() <= 0.5 / 255 + 1e-6


def test_png_frames_as_json(http: httpx.Client) -> None:
    body = {"latents": latents(4).tolist(), "format": "png", "fps": 8}
    answer = http.post("/decode", json=body)
    assert answer.status_code == 200, answer.text
    content = answer.json()
    assert (content["model"], content["version"], content["fps"]) == (MODEL, 1, 8.0)
    assert len(content["frames"]) == FRAMES
    with Image.open(io.BytesIO(base64.b64decode(content["frames"][0]))) as image:
        assert image.size == (WIDTH, HEIGHT) and image.mode == "RGB"


def test_a_batch_keeps_its_axis(http: httpx.Client, imported: tuple[Path, Any]) -> None:
    z = latents(5, clips=2)
    answer = http.post("/decode", json={"latents": z.tolist(), "format": "npy"})  # 5-D nesting
    assert answer.status_code == 200, answer.text
    frames = np.load(io.BytesIO(answer.content))
    assert frames.shape == (2, FRAMES, 3, HEIGHT, WIDTH)
    np.testing.assert_allclose(frames, local_frames(imported[1], z), atol=TOLERANCE)
    raw = decode(http, z, format="raw")
    assert json.loads(raw.headers["shape"]) == [2, FRAMES, HEIGHT, WIDTH, 3]
    pngs = http.post("/decode", json={"latents": z.tolist(), "format": "png"}).json()
    assert [len(clip) for clip in pngs["clips"]] == [FRAMES, FRAMES]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"latents": latents(clips=1)[:, :4].tolist()}, 422, "takes latents of 16 channels"),
        ({"latents": latents(clips=2).tolist(), "format": "mp4"}, 422, "an mp4 holds one clip"),
        ({"latents": [[[[1.0, 2.0], [3.0]]]]}, 422, "equal-size"),
        ({"latents": latents().tolist(), "fps": 0}, 422, "fps"),
        ({"latents": latents().tolist(), "format": "gif"}, 422, "format"),
    ],
    ids=["wrong channels", "mp4 of two clips", "ragged", "fps 0", "unknown format"],
)
def test_what_decode_refuses(
    http: httpx.Client, body: dict[str, Any], status: int, message: str
) -> None:
    answer = http.post("/decode", json=body)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["message"]


def test_a_video_body_is_not_latents(http: httpx.Client) -> None:
    answer = http.post("/decode", content=b"\x00" * 64, headers={"content-type": "video/mp4"})
    assert answer.status_code == 415
    assert "not a video" in answer.json()["message"]


def test_encode_reads_an_mp4(http: httpx.Client, imported: tuple[Path, Any]) -> None:
    clip = decode(http, latents(6), format="mp4").content
    answer = http.post(
        "/encode", content=clip, headers={"content-type": "video/mp4", "accept": NPY}
    )
    assert answer.status_code == 200, answer.text
    means = np.load(io.BytesIO(answer.content))
    assert means.shape == (1, CHANNELS, LATENT_FRAMES, CELLS_H, CELLS_W)
    frames, _ = mp4_frames(clip)  # what the server read, as FFmpeg reads it
    x = torch.from_numpy(frames.transpose(3, 0, 1, 2)[None] / 127.5 - 1).float()
    with torch.no_grad():
        expected = imported[1].encode(x).latent_dist.mean.numpy()
    np.testing.assert_allclose(means, expected, atol=TOLERANCE)


@pytest.mark.parametrize(
    ("content", "kind", "status", "message"),
    [
        (npy(np.zeros((6, HEIGHT, WIDTH, 3), np.uint8)), NPY, 422, "send 5 or 9 frames"),
        (b"not a video at all", "video/mp4", 422, "not a video FFmpeg can read"),
    ],
    ids=["bad frame count", "undecodable video"],
)
def test_what_encode_refuses(
    http: httpx.Client, content: bytes, kind: str, status: int, message: str
) -> None:
    answer = http.post("/encode", content=content, headers={"content-type": kind})
    assert answer.status_code == status, answer.text
    assert message in answer.json()["message"]


def decoder_calls(http: httpx.Client) -> float:
    """How many decoder calls the service has computed for the model (the count of its engine
    time histogram)."""
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("vae_inference_duration_seconds_count{") and all(
            label in line for label in (f'model="{MODEL}"', 'graph="decoder"')
        ):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_long_clip_streams_before_its_last_frame_is_decoded(http: httpx.Client) -> None:
    latent_frames = 24  # 93 frames, walked in a call per latent frame (the tiny tiles' stride)
    z = latents(7, frames=latent_frames)
    before = decoder_calls(http)
    received = b""
    with http.stream(
        "POST", "/decode", content=npy(z), params={"format": "mp4"},
        headers={"content-type": NPY},
    ) as answer:  # fmt: skip
        assert answer.status_code == 200
        frames = int(answer.headers["x-vae-frames"])
        chunks = answer.iter_raw()
        while received.count(b"moof") < 1:  # a fragment a frame: the first frame is here
            received += next(chunks)
        calls_at_first_frame = decoder_calls(http) - before
        received += b"".join(chunks)
    calls = decoder_calls(http) - before
    assert calls >= 8
    assert calls_at_first_frame < calls  # the server had not decoded the whole clip
    assert received.count(b"moof") == frames == (latent_frames - 1) * TEMPORAL + 1
    assert mp4_frames(received)[0].shape == (frames, HEIGHT, WIDTH, 3)


def test_a_causal_models_normalised_latents_as_mp4_and_npy(
    http: httpx.Client, imported: tuple[Path, Any], wan: Any
) -> None:
    manifest = ModelRepository(imported[0]).manifest("wan", 1)
    assert manifest.video is not None and manifest.video.decode.scheme == "causal_cache"
    assert manifest.latents_mean and manifest.latents_std
    z = latents(9)
    mean = np.asarray(manifest.latents_mean, np.float32).reshape(-1, 1, 1, 1)
    std = np.asarray(manifest.latents_std, np.float32).reshape(-1, 1, 1, 1)
    scaled = ((z - mean) / std - manifest.shift_factor) * manifest.scaling_factor
    expected = local_frames(wan, z[None])[0]
    answer = decode(http, scaled, accept=NPY, model="wan", normalized="true")
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(np.load(io.BytesIO(answer.content)), expected, atol=TOLERANCE)
    clip = decode(http, scaled, model="wan", normalized="true")
    assert clip.headers["x-model"] == "wan"
    frames, rate = mp4_frames(clip.content)
    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert rate == manifest.video.fps
    unit = expected.transpose(0, 2, 3, 1)
    assert psnr(luma(frames / 255.0), luma(unit)) >= 30.0


def test_raw_float16_latents(http: httpx.Client, imported: tuple[Path, Any]) -> None:
    z = latents(8).astype(np.float16)
    answer = http.post(
        "/decode",
        content=z.tobytes(),
        params={"shape": list(z.shape), "dtype": "float16", "format": "npy"},
        headers={"content-type": RAW},
    )
    assert answer.status_code == 200, answer.text
    frames = np.load(io.BytesIO(answer.content))
    expected = local_frames(imported[1], z[None].astype(np.float32))[0]
    np.testing.assert_allclose(frames, expected, atol=TOLERANCE)


@pytest.mark.parametrize("graph", ["decoder", "encoder"])
def test_the_open_inference_protocol_refuses_a_video_models_graphs(
    http: httpx.Client, graph: str
) -> None:
    metadata = http.get(f"/v2/models/{MODEL}.{graph}")
    assert metadata.status_code == 404
    assert "is a video model" in metadata.json()["error"]
    body = {"inputs": [{"name": "z", "datatype": "FP32", "shape": [1], "data": [0.0]}]}
    infer = http.post(f"/v2/models/{MODEL}.{graph}/infer", json=body)
    assert infer.status_code == 404
    assert "POST /decode and /encode" in infer.json()["error"]
