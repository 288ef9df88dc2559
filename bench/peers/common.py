"""What every peer shares: the decoder session, PNG rendering and a batch counter the bench reads."""

from __future__ import annotations

import argparse
import os
import threading
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from app.runtime.sessions import GraphSession, load_graph
from app.serving.imaging import encode_png_base64

STATS_ENV = "BENCH_STATS_FILE"


class BatchStats:
    """Counts model calls and rows, and writes both to a small file after every call.

    The bench reads the file before and after a measurement window: mean batch size is the
    difference in rows over the difference in calls. One pwrite per batch costs microseconds.
    """

    def __init__(self, path: str | None) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if path else None
        self._lock = threading.Lock()
        self.calls = 0
        self.rows = 0

    def record(self, rows: int) -> None:
        """Adds one model call of `rows` samples."""
        with self._lock:
            self.calls += 1
            self.rows += rows
            if self._fd is not None:
                os.pwrite(self._fd, f"{self.calls} {self.rows}\n".ljust(40).encode(), 0)


def read_stats(path: Path) -> tuple[int, int]:
    """(calls, rows) from a file BatchStats writes; (0, 0) before the first call."""
    try:
        calls, rows = path.read_text().split()[:2]
    except (FileNotFoundError, ValueError):
        return 0, 0
    return int(calls), int(rows)


class PeerDecoder:
    """decoder.onnx behind the same session options the service uses, plus PNG rendering."""

    def __init__(self, model: str, threads: int) -> None:
        self.graph: GraphSession = load_graph(Path(model), threads)
        self.stats = BatchStats(os.environ.get(STATS_ENV))
        dim = self.graph.session.get_inputs()[0].shape[1]
        self.latent_dim = int(dim)
        for rows in (1, 64):  # warm-up, as the service does before traffic
            self.graph.run(np.zeros((rows, self.latent_dim), dtype=np.float32))

    def images(self, z: NDArray[np.float32]) -> NDArray[np.float32]:
        """x_mean [N,C,H,W] for latents [N,D], counted as one batch."""
        self.stats.record(len(z))
        return self.graph.run(np.ascontiguousarray(z, dtype=np.float32))["x_mean"]

    def pngs(self, z: NDArray[np.float32]) -> list[str]:
        """Base64 PNGs for latents [N,D]: what the service's /decode answers by default."""
        return [encode_png_base64(image) for image in self.images(z)]


def peer_arguments(description: str | None) -> argparse.ArgumentParser:
    """The options every peer server run as `python -m bench.peers.<name>` takes (the bench's
    `Peer.launch_server` passes them); each server adds its own batching delay."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", required=True, help="path to decoder.onnx")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--max-batch-size", type=int, default=64)
    return parser
