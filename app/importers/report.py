"""The reconstructions figure of an imported autoencoder: smooth synthetic images (gradients,
discs, stripes) through encoder and decoder, originals above, reconstructions below."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from app.arrays import FloatArray
from app.importers.checks import GraphPair
from app.serving.imaging import encode_png, tile


def probe_images(count: int, channels: int, height: int, width: int, seed: int = 0) -> FloatArray:
    """Synthetic images in [0,1]: colour gradients with a soft disc and stripes each."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ys, xs = ys / max(1, height - 1), xs / max(1, width - 1)
    images = np.empty((count, channels, height, width), np.float32)
    for n in range(count):
        cy, cx, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
        disc = 1 / (1 + np.exp((np.hypot(ys - cy, xs - cx) - r) * 30))
        for c in range(channels):
            a, b, f = rng.uniform(0, 1, 3)
            stripes = 0.15 * np.sin((xs + ys) * (4 + 8 * f) * np.pi)
            images[n, c] = np.clip(0.2 + 0.4 * (a * xs + b * ys) + 0.3 * disc + stripes, 0, 1)
    return images


def reconstructions(pair: GraphPair, directory: Path, count: int = 4) -> dict[str, float]:
    """Writes `report/reconstructions.png` and returns the mean and max absolute pixel error
    (in [0,1] units) of the reconstructions."""
    manifest = pair.manifest
    height, width = manifest.image.height, manifest.image.width
    images = probe_images(count, manifest.image.channels, height, width)
    low, high = manifest.value_range
    x = images * (high - low) + low
    decoded = (pair.decode(pair.encode(x)["mu"]) - low) / (high - low)
    decoded = np.clip(decoded, 0.0, 1.0)
    report = directory / "report"
    report.mkdir(exist_ok=True)
    grid = tile(np.concatenate([images, decoded]), columns=count)
    (report / "reconstructions.png").write_bytes(encode_png(grid))
    error = np.abs(decoded - images)
    return {"reconstruction_mae": float(error.mean()), "reconstruction_max": float(error.max())}
