"""Hugging Face's remote-VAE protocol for a video model, self-hosted: diffusers' own
`remote_decode`, pointed at a running `vae serve` with a tiny random-weight HunyuanVideo
autoencoder (16 latent channels, 8x in space, 4x in time) imported from diffusers, on latents
shaped as Hugging Face's own test sends ([1, 16, 3, 40, 64] float16: 9 frames of 320x512), for
every output type diffusers reads: mp4, pt (raw, and partially postprocessed to uint8), and pil
with a VideoProcessor. Each answer is held to what the same diffusers model decodes locally.

The mp4's quality is measured on luma, as video PSNR is (a random-weight decoder's frames are
close to noise, and yuv420p halves their chroma: see tests/integration/test_video_api.py)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest

from app.repository.store import ModelRepository
from tests.support.processes import running_service, service_env

torch = pytest.importorskip("torch")
remote_utils = pytest.importorskip("diffusers.utils.remote_utils")
video_processor = pytest.importorskip("diffusers.video_processor")
video_models = pytest.importorskip("tests.support.video_models")

MODEL = "hunyuan"
SHAPE = (1, 16, 3, 40, 64)  # Hugging Face's HunyuanVideo test latents
FRAMES, HEIGHT, WIDTH = 9, 320, 512
# float16 answers round the fp32 decode: a half-float step is 2^-11 relative
RAW_TOLERANCE = {"rtol": 2e-3, "atol": 2e-3}
LEVELS = 1  # uint8 frames within one level (rounding of a float that lands near a half)


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The tiny HunyuanVideo imported as `hunyuan`; the diffusers model walking time in the
    tiles the import recorded (as the served graphs do)."""
    root = tmp_path_factory.mktemp("remote-video")
    models = root / "models"
    vae = video_models.import_video(models, root, "AutoencoderKLHunyuanVideo", MODEL)
    tiles = ModelRepository(models).manifest(MODEL, 1).source.get("frame_tiles")
    if tiles:
        vae.use_framewise_decoding = vae.use_framewise_encoding = True
        vae.tile_sample_min_num_frames = tiles["tile_sample_min_num_frames"]
        vae.tile_sample_stride_num_frames = tiles["tile_sample_stride_num_frames"]
    return models, vae


@pytest.fixture(scope="module")
def endpoint(imported: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("remote-video-serve")
    env = service_env(imported[0], root, default_model=MODEL)  # /remote runs fp32 anyway
    with running_service(env, root) as service:
        yield f"{service.url}/remote/{MODEL}/decode"


@pytest.fixture(scope="module")
def latents() -> Any:
    """Latents as a HunyuanVideo pipeline hands them to its VAE: scaled, in float16."""
    generator = torch.Generator().manual_seed(0)
    return torch.randn(SHAPE, generator=generator).to(torch.float16)


@pytest.fixture(scope="module")
def local(imported: tuple[Path, Any], latents: Any) -> Any:
    """diffusers' own decode of the latents, unscaled in fp32: [1, 3, F, H, W] in [-1, 1]."""
    vae = imported[1]
    with torch.no_grad():
        return vae.decode(latents.float() / vae.config.scaling_factor).sample


def scaling(imported: tuple[Path, Any]) -> float:
    return float(imported[1].config.scaling_factor)


def local_uint8(local: Any) -> np.ndarray:
    """The local decode postprocessed as diffusers' VideoProcessor does: uint8 [F, H, W, 3]."""
    frames = video_processor.VideoProcessor(vae_scale_factor=8).postprocess_video(local, "np")[0]
    return np.rint(frames * 255).astype(np.uint8)


def near(frames: np.ndarray, expected: np.ndarray) -> bool:
    return bool(np.abs(frames.astype(int) - expected.astype(int)).max() <= LEVELS)


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def test_mp4(endpoint: str, imported: tuple[Path, Any], latents: Any, local: Any) -> None:
    video = remote_utils.remote_decode(
        endpoint=endpoint, tensor=latents, scaling_factor=scaling(imported),
        output_type="mp4", return_type="mp4",
    )  # fmt: skip
    assert isinstance(video, bytes)
    with av.open(io.BytesIO(video)) as container:
        assert container.streams.video[0].codec_context.name == "h264"
        frames = np.array([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert frames.shape == (FRAMES, HEIGHT, WIDTH, 3)
    expected = local_uint8(local) / 255.0
    error = np.mean((luma(frames / 255.0) - luma(expected)) ** 2)
    assert 10 * np.log10(1 / error) >= 30


def test_pt_is_the_decoders_output_in_the_latents_dtype(
    endpoint: str, imported: tuple[Path, Any], latents: Any, local: Any
) -> None:
    output = remote_utils.remote_decode(
        endpoint=endpoint, tensor=latents, scaling_factor=scaling(imported),
        output_type="pt", return_type="pt",
    )  # fmt: skip
    assert output.dtype == torch.float16
    assert tuple(output.shape) == (1, 3, FRAMES, HEIGHT, WIDTH)
    np.testing.assert_allclose(output.float().numpy(), local.numpy(), **RAW_TOLERANCE)


def test_pt_postprocessed_with_a_video_processor(
    endpoint: str, imported: tuple[Path, Any], latents: Any, local: Any
) -> None:
    frames = remote_utils.remote_decode(
        endpoint=endpoint, tensor=latents, scaling_factor=scaling(imported), output_type="pt",
        processor=video_processor.VideoProcessor(vae_scale_factor=8),
    )  # fmt: skip
    assert len(frames) == FRAMES and frames[0].size == (WIDTH, HEIGHT)
    assert near(np.array([np.asarray(frame) for frame in frames]), local_uint8(local))


def test_pt_partially_postprocessed_is_uint8_frames(
    endpoint: str, imported: tuple[Path, Any], latents: Any, local: Any
) -> None:
    output = remote_utils.remote_decode(
        endpoint=endpoint, tensor=latents, scaling_factor=scaling(imported),
        output_type="pt", partial_postprocess=True, return_type="pt",
    )  # fmt: skip
    assert output.dtype == torch.uint8
    assert tuple(output.shape) == (FRAMES, HEIGHT, WIDTH, 3)
    assert near(output.numpy(), local_uint8(local))


def test_pil_with_a_video_processor(
    endpoint: str, imported: tuple[Path, Any], latents: Any, local: Any
) -> None:
    frames = remote_utils.remote_decode(
        endpoint=endpoint, tensor=latents, scaling_factor=scaling(imported), output_type="pil",
        processor=video_processor.VideoProcessor(vae_scale_factor=8),
    )  # fmt: skip
    assert isinstance(frames, list) and len(frames) == FRAMES
    assert frames[0].size == (WIDTH, HEIGHT)
    assert near(np.array([np.asarray(frame) for frame in frames]), local_uint8(local))


def test_do_scaling_asks_for_the_models_own_normalisation(
    endpoint: str, latents: Any, local: Any
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # do_scaling is deprecated in diffusers
        output = remote_utils.remote_decode(
            endpoint=endpoint, tensor=latents, do_scaling=True, output_type="pt",
            partial_postprocess=True, return_type="pt",
        )  # fmt: skip
    assert near(output.numpy(), local_uint8(local))


def test_pil_without_a_processor_is_refused_clearly(endpoint: str, latents: Any) -> None:
    answer = httpx.post(
        endpoint,
        content=latents.numpy().tobytes(),
        params={"shape": list(SHAPE), "dtype": "float16", "output_type": "pil"},
        headers={"content-type": "tensor/binary", "accept": "image/jpeg"},
        timeout=120,
    )
    assert answer.status_code == 422
    assert "needs a processor" in answer.json()["message"]


def test_two_clips_as_frames_and_refused_as_one_mp4(
    endpoint: str, imported: tuple[Path, Any]
) -> None:
    z = torch.randn(2, 16, 2, 4, 6, generator=torch.Generator().manual_seed(1))
    output = remote_utils.remote_decode(
        endpoint=endpoint, tensor=z, scaling_factor=scaling(imported),
        output_type="pt", partial_postprocess=True, return_type="pt",
    )  # fmt: skip
    assert tuple(output.shape) == (2 * 5, 32, 48, 3)  # [N*F, H, W, C]
    vae = imported[1]
    with torch.no_grad():
        local = vae.decode(z / vae.config.scaling_factor).sample
    expected = np.concatenate([local_uint8(local[i : i + 1]) for i in range(2)])
    assert near(output.numpy(), expected)
    with pytest.raises(RuntimeError, match="one clip"):
        remote_utils.remote_decode(
            endpoint=endpoint, tensor=z, scaling_factor=scaling(imported),
            output_type="mp4", return_type="mp4",
        )  # fmt: skip
