"""Every model kind's branches, in process: one small version of each kind (vae, cvae, hvae,
vqvae) trained on stroke digits, served by create_app over httpx.ASGITransport. The kind row
reaches GET /models/{name}, /encode gives what the row says, codes are taken only by a kind that
has a codebook, and `vae evaluate` reports the quantity the manifest reports."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from app.config import Settings
from app.datasets.arrays import load_arrays
from app.repository.kinds import KINDS
from app.repository.store import ModelRepository
from app.training.config import TrainConfig
from app.training.pipeline import run_training
from tests.support.synthetic import write_npz

SMALL: dict[str, Any] = {"epochs": 1, "hidden": [32], "latent_dim": 4, "eval_k": 8,
                         "quality": False, "holdout": 60, "batch_size": 64}  # fmt: skip
CONFIGS: dict[str, dict[str, Any]] = {
    "vae": {"kind": "vae"},
    "cvae": {"kind": "cvae"},
    "hvae": {"kind": "hvae", "bottom_latent_dim": 3},
    "vqvae": {"kind": "vqvae", "num_embeddings": 8, "embedding_dim": 2, "conv_channels": [4, 8],
              "prior_epochs": 1, "prior_channels": 8, "prior_layers": 1},
}  # fmt: skip
pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A repository holding one version of every kind, each named after its kind; and the data."""
    root = tmp_path_factory.mktemp("kinds")
    data = write_npz(root / "strokes.npz", 360)
    models = ModelRepository(root / "models")
    for name, config in CONFIGS.items():
        run_training(TrainConfig.model_validate({**SMALL, **config}), data, name, models)
    return root / "models", data


@pytest.fixture(scope="module")
async def client(repository: tuple[Path, Path]) -> AsyncIterator[httpx.AsyncClient]:
    from app.main import create_app

    settings = Settings(
        models_dir=repository[0], data_dir=repository[0].parent / "data", default_model="vae"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield http


def image_arrays(count: int) -> list[Any]:
    """Stroke digits as [0, 1] arrays [H][W]."""
    from tests.support.synthetic import stroke_digits

    images, _ = stroke_digits(count, seed=9)
    return (images.astype(np.float32) / 255.0).tolist()  # type: ignore[no-any-return]


def label_for(name: str) -> dict[str, int]:
    return {"label": 1} if KINDS[name].conditional else {}


@pytest.mark.parametrize("name", sorted(CONFIGS))
async def test_the_kind_row_reaches_get_models(client: httpx.AsyncClient, name: str) -> None:
    reply = await client.get(f"/models/{name}")
    assert reply.status_code == 200, reply.text
    version = reply.json()["versions"][0]
    assert version["kind"] == KINDS[name].describe()
    assert version["manifest"]["kind"] == name
    assert set(KINDS[name].graphs) <= set(version["manifest"]["files"])


@pytest.mark.parametrize("name", sorted(CONFIGS))
async def test_encode_gives_what_the_row_says(client: httpx.AsyncClient, name: str) -> None:
    body = {"model": name, "arrays": image_arrays(2), **label_for(name)}
    reply = await client.post("/encode", json=body)
    assert reply.status_code == 200, reply.text
    entry = reply.json()["latents"][0]
    manifest = (await client.get(f"/models/{name}")).json()["versions"][0]["manifest"]
    if KINDS[name].encoding == "codes":
        assert set(entry) >= {"codes", "z_e"} and "mu" not in entry
        assert [len(entry["codes"]), len(entry["codes"][0])] == manifest["grid"]
        assert len(entry["z_e"]) == manifest["latent_dim"]
        refused = await client.post("/encode", json={**body, "samples": 2})
        assert refused.status_code == 422
    else:
        assert len(entry["mu"]) == len(entry["sigma"]) == manifest["latent_dim"]
        drawn = await client.post("/encode", json={**body, "samples": 3})
        assert drawn.status_code == 200, drawn.text
        assert len(drawn.json()["latents"][0]["z"]) == 3


@pytest.mark.parametrize("name", sorted(CONFIGS))
async def test_decode_takes_codes_only_from_a_kind_with_a_codebook(
    client: httpx.AsyncClient, name: str
) -> None:
    manifest = (await client.get(f"/models/{name}")).json()["versions"][0]["manifest"]
    grid = manifest["grid"] or [2, 2]
    codes = {"model": name, "codes": [np.zeros(grid, int).tolist()], **label_for(name)}
    reply = await client.post("/decode", json=codes)
    if KINDS[name].has_code_prior:
        assert reply.status_code == 200, reply.text
        assert len(reply.json()["images"]) == 1
    else:
        assert reply.status_code == 422
        assert reply.json()["message"].endswith("send 'latents'")
    latents = {"model": name, "latents": [[0.0] * manifest["latent_dim"]], **label_for(name)}
    reply = await client.post("/decode", json=latents)
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize("name", sorted(CONFIGS))
async def test_sample_draws_as_the_row_says(client: httpx.AsyncClient, name: str) -> None:
    reply = await client.post("/sample", json={"model": name, "n": 3, "seed": 4, **label_for(name)})
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert len(answer["images"]) == len(answer["latents"]) == 3
    assert ("codes" in answer) == (KINDS[name].sampler == "code_prior")


async def test_a_label_is_required_by_the_conditional_kind_only(
    client: httpx.AsyncClient,
) -> None:
    without = await client.post("/sample", json={"model": "cvae", "n": 1})
    assert without.status_code == 422
    refused = await client.post("/sample", json={"model": "vae", "n": 1, "label": 1})
    assert refused.status_code == 422


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_vae_evaluate_reports_what_the_manifest_reports(
    repository: tuple[Path, Path], name: str, tmp_path: Path
) -> None:
    """On the held-out split the manifest was scored on, binarized with the same seed, the CLI
    gives the manifest's numbers: from the graphs, or from the weights for an hvae (the model
    was rounded to their float16 before it was exported and scored)."""
    from app.cli import app

    models_dir, data = repository
    manifest = ModelRepository(models_dir).manifest(name, 1)
    config = TrainConfig.model_validate(manifest.training.config if manifest.training else {})
    dataset = load_arrays(data)
    _, heldout = dataset.split(config.holdout_count(len(dataset)), seed=config.seed)
    heldout_file = tmp_path / "heldout.npz"
    np.savez(heldout_file, images=heldout.images[:, 0], labels=heldout.labels)
    args = ["evaluate", "--data", str(heldout_file), "--model", f"{name}:1", "--k",
            str(config.eval_k), "--binarize-seed", str(config.seed + 1), "--seed",
            str(config.seed), "--models-dir", str(models_dir)]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    reported = json.loads(result.output)
    assert manifest.metrics is not None
    expected = manifest.metrics.model_dump()
    tolerance = 1e-4
    for field in ("elbo", "iwae_nll", "kl", "reconstruction_nll"):
        if expected[field] is None:
            assert reported[field] is None
        else:
            assert reported[field] == pytest.approx(expected[field], abs=tolerance), field
