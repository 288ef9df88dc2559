"""`vae train` end to end: train, export, parity gate, evaluate, publish; then serve it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.repository.store import ModelRepository
from app.training import export
from app.training.config import TrainConfig
from app.training.pipeline import run_training
from tests.support.paths import ROOT
from tests.support.processes import running_service
from tests.support.synthetic import write_npz


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_npz(tmp_path_factory.mktemp("data") / "strokes.npz", 2000)


def test_vae_train_publishes_a_servable_version(dataset: Path, tmp_path: Path) -> None:
    repo = tmp_path / "models"
    command = [
        sys.executable, "-m", "app.cli", "train", "--data", str(dataset), "--name", "strokes",
        "--models-dir", str(repo), "--epochs", "3", "--eval-k", "200",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "published strokes:1" in done.stderr

    version = repo / "strokes" / "1"
    for name in ("encoder.onnx", "decoder.onnx", "weights.safetensors", "manifest.json"):
        assert (version / name).is_file(), name
    for figure in ("reconstructions", "samples", "interpolation", "latent_map"):
        assert (version / "report" / f"{figure}.png").is_file()
    manifest = json.loads((version / "manifest.json").read_text())
    assert manifest["parity"]["max_abs_err"] <= 1e-4
    assert manifest["metrics"]["k"] == 200
    assert manifest["metrics"]["iwae_nll"] <= -manifest["metrics"]["elbo"] + 1e-6
    assert (
        manifest["training"]["train_images"] == 1800
        and manifest["training"]["heldout_images"] == 200
    )
    assert set(manifest["files"]) >= {"encoder.onnx", "decoder.onnx", "weights.safetensors"}
    assert (repo / "strokes" / "DEFAULT").read_text().strip() == "1"
    assert not list((repo / "strokes").glob(".staging-*"))

    # A server started afterwards answers from the new version.
    env = {"VAE_MODELS_DIR": str(repo), "VAE_DEFAULT_MODEL": "strokes"}
    with running_service(env, tmp_path) as service, service.client() as http:
        reply = http.post("/sample", json={"n": 2, "seed": 0})
        assert reply.status_code == 200, reply.text
        assert reply.json()["model"] == "strokes" and reply.json()["version"] == 1


def test_a_second_run_becomes_version_two(dataset: Path, tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "models")
    config = TrainConfig(epochs=1, eval_k=10, hidden=[64], latent_dim=4)
    first = run_training(config, dataset, "twice", repository)
    second = run_training(config, dataset, "twice", repository)
    assert (first.version, second.version) == (1, 2)
    assert repository.default_version("twice") == 2


def test_parity_failure_publishes_nothing(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export, "PARITY_TOLERANCE", -1.0)  # no graph can pass
    repository = ModelRepository(tmp_path / "models")
    config = TrainConfig(epochs=1, eval_k=10, hidden=[64], latent_dim=4)
    with pytest.raises(export.ParityError):
        run_training(config, dataset, "refused", repository)
    assert repository.versions("refused") == []
    left = tmp_path / "models" / "refused"
    assert not left.exists() or list(left.iterdir()) == []  # a failed publish leaves nothing


def test_conv_gaussian_model_exports_and_passes_parity(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    images = (rng.random((300, 20, 20, 3)) * 255).astype(np.uint8)  # odd-ish size, RGB
    data = tmp_path / "rgb.npz"
    np.savez(data, images=images)
    config = TrainConfig(
        arch="conv", conv_channels=[8, 16], conv_fc=32, latent_dim=4, likelihood="gaussian",
        epochs=1, eval_k=5,
    )  # fmt: skip
    published = run_training(config, data, "rgb", ModelRepository(tmp_path / "models"))
    assert published.manifest.image.shape == (3, 20, 20)
    assert published.manifest.likelihood == "gaussian"
    assert published.manifest.parity["max_abs_err"] <= 1e-4
