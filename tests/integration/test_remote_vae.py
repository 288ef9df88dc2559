"""Hugging Face's remote-VAE protocol, self-hosted: diffusers' own `remote_decode` and
`remote_encode`, pointed at a running `vae serve`, return what the same diffusers model computes
locally, for a tiny random AutoencoderKL (with a shift factor, as Flux's) and a TAESD-style
AutoencoderTiny imported with `vae import diffusers`: decoded images within 1% on uint8, encoded
latents (mean - shift_factor) * scaling_factor within 1e-3, at a non-square size, for a PIL image
and a tensor sent to remote_encode, and for Flux-style packed latents. The service runs on its
defaults: on an AMX CPU a graph may be chosen in bf16 (these tiny models' load trials are close,
so either), and /remote still runs fp32 (the graph's fp32 twin, counted in the metrics under
`<graph>-fp32`) while /decode and /encode run what was chosen; with VAE_PRECISION=bf16 too."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support.autoencoders import save
from tests.support.processes import ServiceProcess, running_service

torch = pytest.importorskip("torch")
remote_utils = pytest.importorskip("diffusers.utils.remote_utils")
image_processor = pytest.importorskip("diffusers.image_processor")

HEIGHT, WIDTH = 24, 40  # non-square; the tiny models downscale 2x: latents 12 x 20
UINT8_TOLERANCE = 0.01 * 255
LATENT_TOLERANCE = 1e-3
RAW = {"content-type": "application/octet-stream"}
PNG = {"content-type": "image/png"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A repository with a tiny kl and tiny model imported through the CLI; the diffusers models."""
    from typer.testing import CliRunner

    from app.cli import app

    root = tmp_path_factory.mktemp("remote")
    made = {}
    for kind in ("kl", "tiny"):
        made[kind] = save(kind, root / kind)
        result = CliRunner().invoke(
            app, ["import", "diffusers", str(root / kind), "--name", kind,
                  "--models-dir", str(root / "models")],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert f"published {kind}:1" in result.output
    return root / "models", made


@pytest.fixture(scope="module")
def service(
    models: tuple[Path, dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("remote-logs")
    # the defaults: an AMX CPU serves bf16 where it passes its gate, and /remote still answers
    # what the local fp32 model computes (it runs the version's fp32 graphs)
    env = {"VAE_MODELS_DIR": str(models[0]), "VAE_DATA_DIR": str(logs / "data"),
           "VAE_DEFAULT_MODEL": "kl", "VAE_THREADS": "1"}  # fmt: skip
    with running_service(env, logs) as running:
        yield running


def _factors(vae: Any) -> tuple[float, float]:
    return float(vae.config.scaling_factor), float(getattr(vae.config, "shift_factor", 0.0) or 0.0)


def _model(models: tuple[Path, dict[str, Any]], kind: str) -> tuple[Any, float, float]:
    """The diffusers model imported as `kind`, with its scaling and shift factors."""
    vae = models[1][kind]
    return (vae, *_factors(vae))


def _latents(vae: Any, seed: int = 0) -> Any:
    """Latents as a diffusion model hands them to the VAE: scaled, shifted ((z - shift) * scale)."""
    z = torch.randn(1, 4, HEIGHT // 2, WIDTH // 2, generator=torch.Generator().manual_seed(seed))
    return z


def _local_uint8(vae: Any, scaled: Any) -> np.ndarray:
    """What the diffusers pipeline does locally: unscale, decode, postprocess to uint8 [H,W,C]."""
    scale, shift = _factors(vae)
    with torch.no_grad():
        decoded = vae.decode(scaled / scale + shift).sample
    image = image_processor.VaeImageProcessor(vae_scale_factor=2).postprocess(decoded, "pil")[0]
    return np.asarray(image, dtype=np.float32)


def _smooth_image(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH] / np.array([HEIGHT, WIDTH])[:, None, None]
    a, b = rng.uniform(0.2, 0.8, (2, 3))
    pixels = np.stack([a[c] * xs + b[c] * ys for c in range(3)], axis=-1) * 200 + 20
    return Image.fromarray(pixels.astype(np.uint8))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _local_latents(vae: Any, x: Any) -> np.ndarray:
    scale, shift = _factors(vae)
    with torch.no_grad():
        encoded = vae.encode(x)
    mean = encoded.latents if hasattr(encoded, "latents") else encoded.latent_dist.mean
    return ((mean - shift) * scale).numpy()


def _pack(z: Any) -> Any:
    """diffusers' FluxPipeline._pack_latents: [N,C,h,w] -> [N, (h/2)(w/2), 4C]."""
    n, c, h, w = z.shape
    z = z.view(n, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return z.reshape(n, (h // 2) * (w // 2), c * 4)


@pytest.mark.parametrize("kind", ["kl", "tiny"])
def test_remote_decode_gives_the_image_diffusers_decodes_locally(
    kind: str, models: tuple[Path, dict[str, Any]], service: ServiceProcess
) -> None:
    vae, scale, shift = _model(models, kind)
    scaled = _latents(vae)
    expected = _local_uint8(vae, scaled)
    endpoint = f"{service.url}/remote/{kind}/decode"
    image = remote_utils.remote_decode(
        endpoint, scaled, scaling_factor=scale, shift_factor=shift, output_type="pil",
        image_format="png",
    )  # fmt: skip
    assert image.size == (WIDTH, HEIGHT)
    assert np.abs(np.asarray(image, np.float32) - expected).max() <= UINT8_TOLERANCE
    tensor = remote_utils.remote_decode(
        endpoint, scaled, scaling_factor=scale, shift_factor=shift, output_type="pt",
        partial_postprocess=True, return_type="pt",
    )  # fmt: skip
    assert tuple(tensor.shape) == (1, HEIGHT, WIDTH, 3) and tensor.dtype == torch.uint8
    assert np.abs(tensor[0].numpy().astype(np.float32) - expected).max() <= UINT8_TOLERANCE
    jpeg = remote_utils.remote_decode(endpoint, scaled, scaling_factor=scale, shift_factor=shift)
    assert jpeg.format == "jpeg" and jpeg.size == (WIDTH, HEIGHT)


def test_remote_decode_takes_packed_flux_latents_with_their_image_size(
    models: tuple[Path, dict[str, Any]], service: ServiceProcess
) -> None:
    vae, scale, shift = _model(models, "kl")
    scaled = _latents(vae, seed=1)
    packed = _pack(scaled)
    assert packed.ndim == 3
    tensor = remote_utils.remote_decode(
        f"{service.url}/remote/kl/decode", packed, scaling_factor=scale, shift_factor=shift,
        output_type="pt", partial_postprocess=True, return_type="pt", height=HEIGHT, width=WIDTH,
    )  # fmt: skip
    expected = _local_uint8(vae, scaled)
    assert np.abs(tensor[0].numpy().astype(np.float32) - expected).max() <= UINT8_TOLERANCE


def test_remote_decode_gives_the_raw_decoder_output_in_the_latents_dtype(
    models: tuple[Path, dict[str, Any]], service: ServiceProcess
) -> None:
    vae, scale, shift = _model(models, "kl")
    scaled = _latents(vae, seed=2)
    with torch.no_grad():
        expected = vae.decode(scaled / scale + shift).sample
    for dtype, tolerance in ((torch.float32, 1e-4), (torch.float16, 1e-2), (torch.bfloat16, 8e-2)):
        out = remote_utils.remote_decode(
            f"{service.url}/remote/kl/decode", scaled.to(dtype), scaling_factor=scale,
            shift_factor=shift, output_type="pt", return_type="pt",
        )  # fmt: skip
        assert out.dtype == dtype and tuple(out.shape) == (1, 3, HEIGHT, WIDTH)
        assert (out.float() - expected).abs().max().item() <= tolerance


@pytest.mark.parametrize("kind", ["kl", "tiny"])
def test_remote_encode_gives_the_shifted_scaled_mean_for_a_pil_image_and_a_tensor(
    kind: str, models: tuple[Path, dict[str, Any]], service: ServiceProcess
) -> None:
    vae, scale, shift = _model(models, kind)
    image = _smooth_image()
    # contiguous: remote_encode sends the bytes of `image.contiguous()` through a view that
    # outlives the copy a non-contiguous tensor gets (diffusers 0.42), so it would send freed memory
    x = image_processor.VaeImageProcessor(vae_scale_factor=2).preprocess(image).contiguous()
    expected = _local_latents(vae, x)
    assert expected.shape == (1, 4, HEIGHT // 2, WIDTH // 2)
    endpoint = f"{service.url}/remote/{kind}/encode"
    from_pil = remote_utils.remote_encode(endpoint, image, scaling_factor=scale, shift_factor=shift)
    assert np.abs(from_pil.numpy() - expected).max() <= LATENT_TOLERANCE
    from_tensor = remote_utils.remote_encode(endpoint, x, scaling_factor=scale, shift_factor=shift)
    assert np.abs(from_tensor.numpy() - expected).max() <= LATENT_TOLERANCE


def test_remote_errors_reach_diffusers_as_the_services_message(service: ServiceProcess) -> None:
    bad = torch.zeros(1, 3, 12, 20)  # 3 channels: the models' latents have 4
    with pytest.raises(RuntimeError, match="latents for model kl are"):
        remote_utils.remote_decode(
            f"{service.url}/remote/kl/decode", bad, scaling_factor=1.0, output_type="pt",
            return_type="pt",
        )  # fmt: skip


def _calls(client: httpx.Client) -> dict[str, float]:
    """Calls each of the kl model's runners made so far (vae_inference_duration_seconds_count),
    by graph: encoder, decoder, and encoder-fp32, decoder-fp32 (the exact twins)."""
    pattern = r'^vae_inference_duration_seconds_count{graph="([^"]+)",model="kl"} (\S+)$'
    text = client.get("/metrics").text
    return {graph: float(n) for graph, n in re.findall(pattern, text, re.MULTILINE)}


def _ran(before: dict[str, float], after: dict[str, float]) -> set[str]:
    """The graphs whose runners were called between the two counts."""
    return {graph for graph, n in after.items() if n > before.get(graph, 0.0)}


def _remote_runs_fp32_and_the_other_routes_the_chosen_graphs(
    url: str, models: tuple[Path, dict[str, Any]], tolerance: float
) -> dict[str, str]:
    """remote_decode and remote_encode of the kl model against `url` give the local model's
    results, and run the fp32 graphs: a graph's twin `<graph>-fp32` where it was chosen below
    fp32, else the chosen one; /decode and /encode run the chosen ones. The precisions chosen."""
    vae, scale, shift = _model(models, "kl")
    scaled, image, other = _latents(vae, seed=4), _smooth_image(seed=4), _smooth_image(seed=5)
    x = image_processor.VaeImageProcessor(vae_scale_factor=2).preprocess(image)
    with httpx.Client(base_url=url, timeout=60) as client:
        version = client.get("/models/kl").json()["versions"][0]
        chosen = {which: engine["precision"] for which, engine in version["engine"].items()}
        exact = {which if chosen[which] == "fp32" else f"{which}-fp32" for which in chosen}
        before = _calls(client)
        tensor = remote_utils.remote_decode(
            f"{url}/remote/kl/decode", scaled, scaling_factor=scale, shift_factor=shift,
            output_type="pt", partial_postprocess=True, return_type="pt",
        )  # fmt: skip
        latents = remote_utils.remote_encode(
            f"{url}/remote/kl/encode", image, scaling_factor=scale, shift_factor=shift
        )
        after_remote = _calls(client)
        z = np.zeros((1, 4, HEIGHT // 2, WIDTH // 2), np.float32)
        query = {"model": "kl", "shape": f"1,4,{HEIGHT // 2},{WIDTH // 2}", "format": "raw"}
        decoded = client.post("/decode", content=z.tobytes(), params=query, headers=RAW)
        encoded = client.post("/encode", content=_png(other), params={"model": "kl"}, headers=PNG)
        assert decoded.status_code == 200 and encoded.status_code == 200
        assert _ran(before, after_remote) == exact, chosen
        assert _ran(after_remote, _calls(client)) == {"encoder", "decoder"}, chosen
        described = client.get("/models/kl").json()["versions"][0]["engine"]
        for which, precision in chosen.items():
            twin = described[which]["exact"]  # what /remote runs, shown once opened
            assert twin is None if precision == "fp32" else twin["precision"] == "fp32", twin
            assert twin is None or twin["opened"] is True
    served = tensor[0].numpy().astype(np.float32)
    assert np.abs(served - _local_uint8(vae, scaled)).max() <= tolerance
    assert np.abs(latents.numpy() - _local_latents(vae, x)).max() <= LATENT_TOLERANCE
    return chosen


def test_on_the_defaults_remote_runs_the_fp32_graphs_and_the_rest_what_was_chosen(
    models: tuple[Path, dict[str, Any]], service: ServiceProcess
) -> None:
    chosen = _remote_runs_fp32_and_the_other_routes_the_chosen_graphs(
        service.url, models, UINT8_TOLERANCE
    )
    print(f"\nkl on the defaults: {chosen}")


def test_with_bf16_chosen_remote_still_gives_the_local_fp32_results(
    models: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """bf16 asked for (no fp32 candidate, no trial to lose): /decode and /encode run bf16,
    /remote the fp32 twins ONNX Runtime or OpenVINO opens on its first request."""
    env = {"VAE_MODELS_DIR": str(models[0]), "VAE_DATA_DIR": str(tmp_path / "data"),
           "VAE_DEFAULT_MODEL": "kl", "VAE_THREADS": "1", "VAE_PRECISION": "bf16"}  # fmt: skip
    with running_service(env, tmp_path) as bf16:
        chosen = _remote_runs_fp32_and_the_other_routes_the_chosen_graphs(bf16.url, models, 2)
    assert chosen == {"encoder": "bf16", "decoder": "bf16"}
