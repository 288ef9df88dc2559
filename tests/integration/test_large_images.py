"""Large images on a real `vae serve` with its defaults, for an 8x AutoencoderKL (a tiny one:
SD's layout at 8-16 channels, sample_size 512, its mid-block attention intact):

- a 2048 x 2048 /decode answers 200: on ONNX Runtime its attention over 256 x 256 latents would
  hold two 65,536 x 65,536 float32 score matrices (32 GiB) in one piece, past the memory budget,
  so it is decoded in diffusers' tiles, and X-VAE-Tiling says so; OpenVINO (the defaults' choice
  on an AMX CPU) fuses the attention, its peak grows with pixels only, and the decode runs in one
  piece, exact; either way the server's RSS comes back within 1.5x of its level before (no engine
  arena keeps the peak);
- a 384 x 640 `diffusers.utils.remote_decode` against /remote is not tiled (it fits the budget;
  tiles would change it) and equals the local diffusers model (at most 2 levels of 255) on the
  defaults: /remote runs the decoder in fp32 (its fp32 twin where a lower precision was chosen),
  while /decode runs the one chosen (on an AMX CPU OpenVINO bf16, held to its quality gate: PSNR
  >= 40 dB against fp32 rather than 2 levels).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.processes import ServiceProcess, running_service, wait_until

torch = pytest.importorskip("torch")
remote_utils = pytest.importorskip("diffusers.utils.remote_utils")
image_processor = pytest.importorskip("diffusers.image_processor")

RAW = {"content-type": "application/octet-stream"}
TINY_SD: dict[str, Any] = {
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [8, 8, 16, 16],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "sample_size": 512,
    "scaling_factor": 0.18215,
}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """The tiny 8x AutoencoderKL, saved as a diffusers folder and imported as `sd`."""
    import diffusers

    from app.repository.store import ModelRepository
    from app.training.import_diffusers import import_diffusers

    root = tmp_path_factory.mktemp("large")
    torch.manual_seed(0)
    vae = diffusers.AutoencoderKL(**TINY_SD).eval()
    vae.save_pretrained(str(root / "sd"))
    import_diffusers(ModelRepository(root / "models"), root / "sd", "sd")
    return root / "models", vae


@pytest.fixture(scope="module")
def service(
    model: tuple[Path, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    logs = tmp_path_factory.mktemp("large-logs")
    env = {"VAE_MODELS_DIR": str(model[0]), "VAE_DATA_DIR": str(logs / "data"),
           "VAE_DEFAULT_MODEL": "sd"}  # fmt: skip
    with running_service(env, logs, ready_timeout=180) as running:
        yield running


def _decode(client: httpx.Client, side: int) -> httpx.Response:
    z = np.random.default_rng(side).standard_normal((1, 4, side // 8, side // 8), np.float32)
    query = {"model": "sd", "shape": f"1,4,{side // 8},{side // 8}", "dtype": "float32",
             "format": "raw"}  # fmt: skip
    return client.post("/decode", content=z.tobytes(), params=query, headers=RAW)


def test_a_2048_decode_finishes_and_the_memory_comes_back(service: ServiceProcess) -> None:
    pid = service.process.pid
    with service.client(timeout=600) as client:
        for side in (512, 1024):  # the engine warmed at the sizes the tiles and a mid size take
            warm = _decode(client, side)
            assert warm.status_code == 200 and "x-vae-tiling" not in warm.headers
        decoder = client.get("/models/sd").json()["versions"][0]["engine"]["decoder"]
        before = _rss_mib(pid)
        answer = _decode(client, 2048)
        assert answer.status_code == 200, answer.text
        tiling = answer.headers.get("x-vae-tiling")
        if decoder["engine"] == "openvino":  # fused attention: ~1 GB, in one piece
            assert tiling is None, decoder
        else:
            assert tiling == "diffusers tiles 512 px, overlap 0.25", decoder
        assert len(answer.content) == 2048**2 * 3
    settled: list[float] = []

    def back() -> bool:
        settled.append(_rss_mib(pid))
        return settled[-1] <= 1.5 * before

    wait_until(back, 30, interval=0.5, what=f"RSS back within 1.5x of {before:.0f} MiB")
    print(f"\n{decoder['engine']} {decoder['precision']}, tiling {tiling}: RSS before "
          f"{before:.0f} MiB, after the 2048 decode {settled[-1]:.0f} MiB")  # fmt: skip


def _remote_384_x_640(vae: Any, url: str) -> tuple[np.ndarray, np.ndarray]:
    """diffusers' remote_decode of 384 x 640 latents against `url`, and the local model's image."""
    scale = float(vae.config.scaling_factor)
    latents = torch.randn(1, 4, 48, 80, generator=torch.Generator().manual_seed(3)) * scale
    with torch.no_grad():
        decoded = vae.decode(latents / scale).sample
    processor = image_processor.VaeImageProcessor(vae_scale_factor=8)
    expected = np.asarray(processor.postprocess(decoded, "pil")[0], np.float32)
    image = remote_utils.remote_decode(
        f"{url}/remote/sd/decode", latents, scaling_factor=scale, output_type="pil",
        image_format="png",
    )  # fmt: skip
    assert image.size == (640, 384)
    return np.asarray(image, np.float32), expected


def _calls(client: httpx.Client) -> dict[str, float]:
    """Calls of each of sd's runners so far, by graph (decoder; decoder-fp32, the exact twin)."""
    pattern = r'^vae_inference_duration_seconds_count{graph="([^"]+)",model="sd"} (\S+)$'
    found = re.findall(pattern, client.get("/metrics").text, re.MULTILINE)
    return {graph: float(calls) for graph, calls in found}


def _ran(before: dict[str, float], after: dict[str, float]) -> set[str]:
    return {graph for graph, calls in after.items() if calls > before.get(graph, 0.0)}


def test_remote_decode_at_384_x_640_is_untiled_and_equals_the_local_model(
    model: tuple[Path, Any], service: ServiceProcess
) -> None:
    served, expected = _remote_384_x_640(model[1], service.url)
    assert np.abs(served - expected).max() <= 2  # on the defaults, whatever decoder was chosen
    with service.client() as client:
        chosen = client.get("/models/sd").json()["versions"][0]["engine"]["decoder"]
        twin = chosen["precision"] != "fp32"
        z = np.random.default_rng(5).standard_normal((1, 4, 48, 80), np.float32)
        query = {"shape": "1,4,48,80", "dtype": "float32", "output_type": "pt",
                 "partial_postprocess": "true"}  # fmt: skip
        before = _calls(client)
        remote = client.post("/remote/sd/decode", content=z.tobytes(), params=query)
        after_remote = _calls(client)
        query = {"model": "sd", "shape": "1,4,48,80", "format": "raw"}
        local = client.post("/decode", content=z.tobytes(), params=query, headers=RAW)
        assert remote.status_code == 200 and "x-vae-tiling" not in remote.headers
        assert local.status_code == 200 and "x-vae-tiling" not in local.headers
        assert _ran(before, after_remote) == {"decoder-fp32" if twin else "decoder"}, chosen
        assert _ran(after_remote, _calls(client)) == {"decoder"}, chosen
    fp32, served = (np.frombuffer(r.content, np.uint8).astype(np.float32) for r in (remote, local))
    error = served - fp32
    if not twin:  # /decode ran the same fp32 graph
        assert not error.any()
        return
    # /decode keeps the faster decoder chosen (OpenVINO bf16 on an AMX CPU), within its gate
    psnr = 10 * np.log10(255**2 / max(float((error**2).mean()), 1e-12))
    assert error.any() and psnr >= 40, chosen["reason"]
    print(f"\n/decode on {chosen['engine']} {chosen['precision']}: {psnr:.1f} dB, "
          f"{np.abs(error).max():.0f} levels at most from /remote's fp32")  # fmt: skip
