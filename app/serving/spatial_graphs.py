"""Loading a spatial version's graphs: float16 graphs behind a float32 face, warmed at the smallest
size the model takes, whether its requests are batched, and the batcher's cap on rows by image
pixels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.arrays import FloatArray
from app.config import Settings, SpatialBatching
from app.repository.manifest import Manifest
from app.runtime.sessions import GraphSession, load_graph
from app.serving.packing import PackedGraph


@dataclass
class CastingSession(GraphSession):
    """A graph exported in float16: fed float32 rows cast down, its outputs cast back up."""

    dtype: type[np.floating] = np.float16

    def run(self, inputs: FloatArray) -> dict[str, FloatArray]:
        """Runs one batch in the graph's dtype; float32 out."""
        outputs = self.session.run(self.output_names, {self.input_name: inputs.astype(self.dtype)})
        return {
            name: np.asarray(value, np.float32)
            for name, value in zip(self.output_names, outputs, strict=True)
        }


def _session(path: Path, dtype: str, settings: Settings) -> GraphSession:
    graph = load_graph(path, settings.threads, settings.ort_spinning)
    if dtype == "float32":
        return graph
    return CastingSession(graph.session, graph.input_name, graph.output_names, np.float16)


CPU_PROVIDER = "CPUExecutionProvider"


def batches_pay(setting: SpatialBatching, provider: str) -> bool:
    """Whether a spatial model's requests are batched (`VAE_SPATIAL_BATCHING`): `on`, `off`, or
    `auto`, on every provider but the CPU's. On a CPU, ONNX Runtime runs these convolutional
    decoders no faster per image in a batch than one by one (bench/RESULTS.md: its best batch is
    one image for TAESD and a small AutoencoderKL at 256 and 512 pixels), so a batch only makes
    its requests wait for each other; a GPU is where batches pay."""
    if setting == "auto":
        return provider != CPU_PROVIDER
    return setting == "on"


def load_spatial_graphs(
    directory: Path, manifest: Manifest, settings: Settings
) -> tuple[PackedGraph, PackedGraph]:
    """The encoder and decoder of a spatial version, warmed at the smallest size it takes."""
    spec = manifest.spatial
    if spec is None:
        raise ValueError(f"model {manifest.name} has no spatial latent")
    channels = manifest.image.channels
    encoder = PackedGraph(
        _session(directory / "encoder.onnx", manifest.dtypes.encoder, settings),
        manifest.image.shape,
        False,
    )
    decoder = PackedGraph(
        _session(directory / "decoder.onnx", manifest.dtypes.decoder, settings),
        manifest.latent_shape,
        False,
    )
    size = spec.min_size if spec.free_size else None
    height, width = (size, size) if size else (manifest.image.height, manifest.image.width)
    encoder.graph.run(np.zeros((1, channels, height, width), np.float32))
    decoder.graph.run(np.zeros((1, *spec.latent_shape(height, width)), np.float32))
    return encoder, decoder


def batch_rows_by_pixels(max_pixels: int, pixels_per_cell: int) -> Callable[[tuple[int, ...]], int]:
    """How many rows of a shape fit `max_pixels` image pixels (at least one): a batcher's cap
    for a spatial graph, whose rows [C,h,w] stand for h*w*pixels_per_cell image pixels."""

    def rows(shape: tuple[int, ...]) -> int:
        cells = shape[-1] * shape[-2] if len(shape) >= 2 else 1
        return max(1, max_pixels // max(1, cells * pixels_per_cell))

    return rows
