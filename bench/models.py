"""The two models the bench measures: the shipped MNIST model and a compute-heavy conv model that
the bench trains itself (1 epoch on synthetic 64x64 RGB images) into bench/work/, never committed.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.procs import vae_command

ROOT = Path(__file__).resolve().parent.parent

CONV_NAME = "conv64"
CONV_CONFIG = {
    "arch": "conv",
    "conv_channels": [64, 128, 256],
    "conv_fc": 512,
    "latent_dim": 64,
    "likelihood": "gaussian",
    "epochs": 1,
    "batch_size": 32,
    "holdout": 32,
    "eval_k": 10,
    "eval_images": 16,
}
"""About 0.3 G multiply-adds a decoded image: transposed convolutions 256->128->64->3 up to 64x64."""


@dataclass(frozen=True)
class BenchModel:
    """One published model version as the bench needs it."""

    key: str  # "mnist" or "conv"
    name: str
    version: int
    models_dir: Path
    latent_dim: int
    image_shape: tuple[int, int, int]  # C, H, W
    note: str

    @property
    def directory(self) -> Path:
        """models_dir/name/version."""
        return self.models_dir / self.name / str(self.version)

    @property
    def decoder(self) -> Path:
        """The decoder graph every system serves."""
        return self.directory / "decoder.onnx"


def _load(key: str, models_dir: Path, name: str, note: str) -> BenchModel | None:
    default = models_dir / name / "DEFAULT"
    if not default.exists():
        return None
    version = int(default.read_text().strip())
    manifest = json.loads((models_dir / name / str(version) / "manifest.json").read_text())
    image = manifest["image"]
    return BenchModel(
        key=key,
        name=name,
        version=version,
        models_dir=models_dir,
        latent_dim=int(manifest["latent_dim"]),
        image_shape=(int(image["channels"]), int(image["height"]), int(image["width"])),
        note=note,
    )


def _train(data: Path, name: str, models_dir: Path, config: dict[str, object], log: Path) -> None:
    command = vae_command(
        "train", "--data", str(data), "--name", name, "--models-dir", str(models_dir),
        "--config", json.dumps(config),
    )  # fmt: skip
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        done = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False)
        if done.returncode:
            raise RuntimeError(f"`vae train` for {name} failed; see {log}")


def shipped_model(work: Path) -> BenchModel:
    """models/mnist as shipped; a throwaway stand-in (1 epoch on noise) when it is not there yet."""
    found = _load("mnist", ROOT / "models", "mnist", "shipped models/mnist")
    if found is not None:
        return found
    fallback_dir = work / "fallback-models"
    found = _load(
        "mnist", fallback_dir, "mnist", "STAND-IN: models/mnist missing, 1 epoch on noise"
    )
    if found is not None:
        return found
    data = work / "noise28.npz"
    images = np.random.default_rng(0).integers(0, 256, (512, 28, 28), dtype=np.uint8)
    np.savez(data, images=images)
    _train(
        data, "mnist", fallback_dir, {"epochs": 1, "eval_k": 10}, work / "logs" / "train-mnist.log"
    )
    model = _load(
        "mnist", fallback_dir, "mnist", "STAND-IN: models/mnist missing, 1 epoch on noise"
    )
    assert model is not None
    return model


def conv_model(work: Path) -> BenchModel:
    """The compute-heavy conv model, trained once into work/models and reused after."""
    models_dir = work / "models"
    note = "conv 64x64x3, channels 64-128-256, fc 512, z 64; 1 epoch on synthetic images"
    found = _load("conv", models_dir, CONV_NAME, note)
    if found is not None:
        return found
    data = work / "synthetic64.npz"
    np.savez(data, images=_synthetic_rgb(256, 64))
    _train(data, CONV_NAME, models_dir, CONV_CONFIG, work / "logs" / f"train-{CONV_NAME}.log")
    model = _load("conv", models_dir, CONV_NAME, note)
    assert model is not None
    return model


def _synthetic_rgb(count: int, size: int) -> np.ndarray:
    """Smooth colour blobs (N x size x size x 3 uint8): cheap, and not pure noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = np.zeros((count, size, size, 3), dtype=np.float32)
    for _ in range(3):
        cx, cy = rng.random((2, count, 1, 1))
        radius = 0.05 + 0.2 * rng.random((count, 1, 1))
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / radius)
        images += blob[..., None] * rng.random((count, 1, 1, 3))
    return (np.clip(images / 3.0, 0, 1) * 255).astype(np.uint8)
