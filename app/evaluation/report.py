"""Report figures of a version, drawn from its ONNX graphs: reconstructions, samples,
an interpolation strip and a 2-D map of the latent means."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from app.evaluation.gaussian import OnnxVAE
from app.serving.imaging import encode_png, tile, upscale
from app.serving.latents import interpolate, sample_prior

FIGURES = ("reconstructions", "samples", "interpolation", "latent_map")
PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


def _scale_for(image_size: int) -> int:
    return max(1, 64 // image_size)


def _save(path: Path, grid: NDArray[np.float32], factor: int) -> None:
    path.write_bytes(encode_png(upscale(grid, factor)))


def latent_map(
    mu: NDArray[np.floating], labels: NDArray[np.int64] | None, size: int = 512
) -> Image.Image:
    """Scatter of the two leading principal components of the latent means, coloured by label."""
    centred = mu - mu.mean(axis=0)
    if centred.shape[1] > 2:
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        points = centred @ components[:2].T
    else:
        points = np.pad(centred, ((0, 0), (0, 2 - centred.shape[1])))
    low, high = np.percentile(points, 0.5, axis=0), np.percentile(points, 99.5, axis=0)
    scaled = (points - low) / np.maximum(high - low, 1e-9)
    canvas = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(canvas)
    margin = 12
    for index, (u, v) in enumerate(np.clip(scaled, 0, 1)):
        colour = PALETTE[int(labels[index]) % len(PALETTE)] if labels is not None else PALETTE[0]
        px, py = margin + u * (size - 2 * margin), margin + (1 - v) * (size - 2 * margin)
        draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=colour)
    return canvas


def write_report(
    model: OnnxVAE,
    x: NDArray[np.float32],
    labels: NDArray[np.int64] | None,
    latent_dim: int,
    directory: Path,
    seed: int = 0,
    class_ids: NDArray[np.int64] | None = None,
    samples: NDArray[np.float32] | None = None,
) -> list[Path]:
    """Writes report/<figure>.png for the held-out images x; returns the paths.

    `class_ids` (graph class indices of x) are given for a conditional model: its samples are
    drawn one row per class. `samples` are drawn by the caller when the prior is not N(0, I)
    (a vqvae's PixelCNN)."""
    directory.mkdir(parents=True, exist_ok=True)
    factor = _scale_for(max(x.shape[2], x.shape[3]))
    originals = x[:16]
    count = min(len(x), 2000)
    y = None if class_ids is None else class_ids[:count]
    mu, _ = model.encode(x[:count], y)
    reconstructions = model.decode(mu[:16], None if y is None else y[:16])
    _save(
        directory / "reconstructions.png",
        tile(np.concatenate([originals, reconstructions]), 16),
        factor,
    )

    if samples is not None:
        _save(directory / "samples.png", tile(samples[:64], 8), factor)
    elif class_ids is None:
        z, _ = sample_prior(64, latent_dim, 1.0, seed)
        _save(directory / "samples.png", tile(model.decode(z), 8), factor)
    else:
        classes = int(class_ids.max()) + 1
        z, _ = sample_prior(8 * classes, latent_dim, 1.0, seed)
        rows_y = np.repeat(np.arange(classes), 8)
        _save(directory / "samples.png", tile(model.decode(z, rows_y), 8), factor)

    rows = []
    for row in range(4):
        first, second = 2 * row, 2 * row + 1
        if labels is not None:
            # Prefer pairs of different classes: the strip then shows one digit becoming another.
            others = np.flatnonzero(labels[: len(mu)] != labels[first])
            second = int(others[row % len(others)]) if len(others) else second
        path = interpolate(mu[first], mu[second % len(mu)], 10, "slerp")
        # A conditional model draws the whole strip as the first image's class.
        strip_y = None if y is None else np.full(len(path), y[first])
        rows.append(model.decode(path, strip_y))
    _save(directory / "interpolation.png", tile(np.concatenate(rows), 10), factor)

    map_labels = None if labels is None else labels[: len(mu)]
    latent_map(mu, map_labels).save(directory / "latent_map.png")
    return [directory / f"{name}.png" for name in FIGURES]
