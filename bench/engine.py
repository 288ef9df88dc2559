"""The raw engine: ONNX Runtime in this process on the same decoder.onnx, with the same session
options and thread count as the service, swept over batch sizes. Its best samples/s is the limit
no server on this machine can pass."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.runtime.sessions import load_graph

BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True)
class EnginePoint:
    """ONNX Runtime alone at one batch size."""

    batch: int
    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def calls_per_second(self) -> float:
        """Model calls a second."""
        return self.calls / self.seconds

    @property
    def samples_per_second(self) -> float:
        """Decoded images a second."""
        return self.calls * self.batch / self.seconds


def sweep(
    decoder: Path,
    latent_dim: int,
    threads: int,
    seconds: float,
    sizes: tuple[int, ...] = BATCH_SIZES,
) -> list[EnginePoint]:
    """Runs the decoder back to back for `seconds` at each batch size."""
    graph = load_graph(decoder, threads)
    rng = np.random.default_rng(0)
    points = []
    for batch in sizes:
        z = rng.standard_normal((batch, latent_dim), dtype=np.float32)
        for _ in range(3):
            graph.run(z)
        times: list[float] = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds or len(times) < 5:
            t0 = time.perf_counter()
            graph.run(z)
            times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - started
        p50, p99 = np.percentile(times, [50, 99]) * 1000.0
        points.append(EnginePoint(batch, len(times), elapsed, float(p50), float(p99)))
    del graph
    return points


def best(points: list[EnginePoint]) -> EnginePoint:
    """The batch size with the most samples a second."""
    return max(points, key=lambda p: p.samples_per_second)
