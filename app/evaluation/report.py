"""Report figures of a version, drawn from its ONNX graphs: reconstructions, samples,
an interpolation strip and a 2-D map of the latent means."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

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


@dataclass(frozen=True)
class MapLayout:
    """Where the latent map draws its parts, as (left, top, right, bottom) boxes in pixels."""

    width: int
    height: int
    plot: tuple[int, int, int, int]
    legend: tuple[int, int, int, int]
    swatch: int = 10
    line: int = 18

    @classmethod
    def for_size(cls, size: int) -> MapLayout:
        """A square plot with room for tick labels on the left and below, and a legend column
        on the right."""
        left, top, bottom = 80, 30, size - 44
        right = left + (bottom - top)
        return cls(
            right + 100, size, (left, top, right, bottom), (right + 16, top, right + 96, bottom)
        )

    def swatch_box(self, row: int) -> tuple[int, int, int, int]:
        """The colour square of the legend's `row`-th entry."""
        x, y = self.legend[0], self.legend[1] + 8 + row * self.line
        return (x, y, x + self.swatch - 1, y + self.swatch - 1)


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except (OSError, ValueError):  # Pillow without FreeType: its small bitmap font
        return ImageFont.load_default()


def latent_map(
    mu: NDArray[np.floating],
    labels: NDArray[np.int64] | None,
    size: int = 512,
    class_names: dict[int, str] | None = None,
) -> Image.Image:
    """Scatter of the two leading principal components of the latent means, coloured by label:
    axes with ticks in the components' units, and a legend of the labels (`class_names` names
    them; else their numbers), or "no labels" where the legend would be."""
    centred = mu - mu.mean(axis=0)
    if centred.shape[1] > 2:
        _, _, components = np.linalg.svd(centred, full_matrices=False)
        points = centred @ components[:2].T
    else:
        points = np.pad(centred, ((0, 0), (0, 2 - centred.shape[1])))
    low, high = np.percentile(points, 0.5, axis=0), np.percentile(points, 99.5, axis=0)
    span = np.maximum(high - low, 1e-9)
    scaled = (points - low) / span
    layout = MapLayout.for_size(size)
    canvas = Image.new("RGB", (layout.width, layout.height), "white")
    draw = ImageDraw.Draw(canvas)
    font = _font(12)
    left, top, right, bottom = layout.plot
    inner = 6  # points stay clear of the axes
    for index, (u, v) in enumerate(np.clip(scaled, 0, 1)):
        colour = PALETTE[int(labels[index]) % len(PALETTE)] if labels is not None else PALETTE[0]
        px = left + inner + u * (right - left - 2 * inner)
        py = bottom - inner - v * (bottom - top - 2 * inner)
        draw.ellipse((px - 2, py - 2, px + 2, py + 2), fill=colour)
    _axes(draw, layout, low, high, inner, font)
    draw.text((left, 8), "latent means: first two principal components", fill="black", font=font)
    if labels is not None:
        _legend(draw, layout, np.unique(labels), class_names or {}, font)
    else:  # say why every point has one colour, where the legend would be
        draw.text((layout.legend[0], layout.legend[1] - 8), "no labels", fill="black", font=font)
    return canvas


def _axes(
    draw: ImageDraw.ImageDraw,
    layout: MapLayout,
    low: NDArray[np.floating],
    high: NDArray[np.floating],
    inner: int,
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    """The plot's frame, three ticks on each axis with their values, and the axis names."""
    left, top, right, bottom = layout.plot
    draw.rectangle(layout.plot, outline="black")
    for share in (0.0, 0.5, 1.0):
        x = left + inner + share * (right - left - 2 * inner)
        y = bottom - inner - share * (bottom - top - 2 * inner)
        draw.line((x, bottom, x, bottom + 4), fill="black")
        draw.line((left - 4, y, left, y), fill="black")
        value_x = float(low[0] + share * (high[0] - low[0]))
        value_y = float(low[1] + share * (high[1] - low[1]))
        draw.text((x, bottom + 6), f"{value_x:.1f}", fill="black", font=font, anchor="mt")
        draw.text((left - 6, y), f"{value_y:.1f}", fill="black", font=font, anchor="rm")
    draw.text(((left + right) / 2, bottom + 24), "PC 1", fill="black", font=font, anchor="mt")
    draw.text((8, (top + bottom) / 2), "PC 2", fill="black", font=font, anchor="lm")


def _legend(
    draw: ImageDraw.ImageDraw,
    layout: MapLayout,
    present: NDArray[np.int64],
    class_names: dict[int, str],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    """One row per label: its colour and its name."""
    draw.text((layout.legend[0], layout.legend[1] - 8), "label", fill="black", font=font)
    for row, label in enumerate(present.tolist()):
        box = layout.swatch_box(row)
        if box[3] > layout.legend[3]:
            break  # more labels than rows: the palette repeats anyway
        draw.rectangle(box, fill=PALETTE[int(label) % len(PALETTE)])
        name = class_names.get(int(label), str(label))
        draw.text((box[2] + 6, box[1] - 1), name, fill="black", font=font)


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
