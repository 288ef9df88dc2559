"""The engine choice as a user sees it, through the app's HTTP interface on tiny imported
AutoencoderKLs: GET /models/{name} says which engine and precision run each graph and why,
`vae_model_engine_info` labels them, VAE_ENGINE=openvino VAE_PRECISION=bf16 serves, and a
version whose bf16 output misses the quality gate is served in fp32."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.runtime.cpu import this_cpu
from app.serving import quality
from tests.support.autoencoders import build
from tests.support.in_process import serving, settings_for

pytestmark = pytest.mark.anyio
RAW = {"content-type": "application/octet-stream", "accept": "application/x-npy"}
# Latent means this far from zero: bf16 keeps 8 significant bits, so at 1000 its steps are 8
# apart and the latents' own variation (about 1) is rounded away.
FAR = 1000.0
needs_bf16 = pytest.mark.skipif(
    not this_cpu().native_bf16(), reason="auto tries bf16 only on a CPU that runs it natively"
)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


def far_latents_model() -> Any:
    """The tiny AutoencoderKL with its latent means moved FAR from zero, and its decoder moved
    back: in float32 the same images as before; in bf16 the decoder's first layer sees latents
    rounded to steps of 8."""
    import torch

    model = build("kl")
    channels = model.config.latent_channels
    with torch.no_grad():
        model.quant_conv.bias[:channels] += FAR
        model.post_quant_conv.bias -= model.post_quant_conv.weight[:, :, 0, 0].sum(dim=1) * FAR
    return model


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    from app.repository.store import ModelRepository
    from app.training.import_diffusers import import_diffusers

    root = tmp_path_factory.mktemp("engines")
    repository = ModelRepository(root / "models")
    build("kl").save_pretrained(str(root / "kl"))
    import_diffusers(repository, root / "kl", "kl")
    far = far_latents_model()
    far.save_pretrained(str(root / "klfar"))
    import_diffusers(repository, root / "klfar", "klfar")
    return root / "models", far


async def _client(models_dir: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    from app.main import create_app

    app = create_app(
        settings_for(models_dir, models_dir.parent / "data", default_model="kl", threads=1,
                     **settings)
    )  # fmt: skip
    async with serving(app) as client:
        yield client


@pytest.fixture(scope="module")
async def client(made: tuple[Path, Any]) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(made[0]):
        yield client


async def _engine(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    described = (await client.get(f"/models/{name}")).json()
    (version,) = described["versions"]
    assert version["loaded"] is True
    engine: dict[str, Any] = version["engine"]
    return engine


def _bf16_trial(choice: dict[str, Any]) -> dict[str, Any]:
    return next(t for t in choice["trials"] if t["precision"] == "bf16")


async def test_get_model_shows_each_graphs_engine_and_why(client: httpx.AsyncClient) -> None:
    engine = await _engine(client, "kl")
    assert set(engine) == {"encoder", "decoder"}
    for choice in engine.values():
        assert choice["engine"] in {"onnxruntime", "openvino"}
        assert choice["precision"] in {"fp32", "bf16"} and choice["device"] == "cpu"
        assert choice["reason"].startswith(f"{choice['engine']} {choice['precision']}")
        engines = {(t["engine"], t["precision"]) for t in choice["trials"]}
        assert {("onnxruntime", "fp32"), ("openvino", "fp32")} <= engines
        if choice["precision"] == "bf16":
            assert choice["gate"]["passed"] and choice["gate"]["value"] >= 40


@needs_bf16
async def test_auto_gates_bf16_on_a_cpu_that_has_it(client: httpx.AsyncClient) -> None:
    decoder = (await _engine(client, "kl"))["decoder"]
    gate = _bf16_trial(decoder)["gate"]
    assert gate["measure"] == "PSNR" and gate["unit"] == "dB" and gate["threshold"] == 40
    assert gate["passed"] and gate["value"] >= 40


async def test_the_metric_labels_every_loaded_graph(client: httpx.AsyncClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    engine = await _engine(client, "kl")
    text = (await client.get("/metrics")).text
    (family,) = [
        f for f in text_string_to_metric_families(text) if f.name == "vae_model_engine_info"
    ]
    series = {tuple(sorted(s.labels.items())): s.value for s in family.samples}
    for graph, choice in engine.items():
        labels = {"model": "kl", "version": "1", "graph": graph}
        labels |= {"engine": choice["engine"], "precision": choice["precision"]}
        assert series[tuple(sorted(labels.items()))] == 1.0


@needs_bf16
async def test_the_quality_gate_refuses_a_version_whose_bf16_output_misses_it(
    client: httpx.AsyncClient, made: tuple[Path, Any]
) -> None:
    import torch

    engine = await _engine(client, "klfar")
    for choice in engine.values():
        assert choice["precision"] == "fp32"
        refused = _bf16_trial(choice)
        assert refused["gate"]["passed"] is False and refused["gate"]["value"] < 40
        assert refused["refused"] and "bf16 refused: PSNR" in choice["reason"]
    # ... and serves fp32: the images are the diffusers model's own
    model = made[1]
    images = quality.check_images(1, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        z = model.encode(torch.from_numpy(images)).latent_dist.mean
        expected = (model.decode(z).sample.numpy() / 2 + 0.5).clip(0, 1)
    latents = z.numpy().astype(np.float32)
    assert latents.mean() > FAR / 2
    query = {"model": "klfar", "shape": ",".join(map(str, latents.shape))}
    answer = await client.post("/decode", content=latents.tobytes(), params=query, headers=RAW)
    assert answer.status_code == 200, answer.text
    decoded = np.load(io.BytesIO(answer.content))
    assert quality.psnr(expected, decoded) >= 60


async def test_openvino_bf16_as_the_settings_say_serves(made: tuple[Path, Any]) -> None:
    async for client in _client(made[0], engine="openvino", precision="bf16"):
        for choice in (await _engine(client, "kl")).values():
            assert (choice["engine"], choice["precision"]) == ("openvino", "bf16")
            assert "the one the settings allow" in choice["reason"]
        z = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
        query = {"model": "kl", "shape": "1,4,8,8"}
        answer = await client.post("/decode", content=z.tobytes(), params=query, headers=RAW)
        assert answer.status_code == 200, answer.text
        assert np.load(io.BytesIO(answer.content)).shape == (1, 3, 16, 16)
