"""BentoML serving decoder.onnx with adaptive batching (`@bentoml.api(batchable=True)`).

Route: POST /decode with {"latents": [[...], ...]} -> a JSON list of base64 PNGs, rendered inside
the batched method. Configured by environment variables (BentoML imports this module itself):
BENCH_MODEL (decoder.onnx), BENCH_THREADS, BENCH_MAX_BATCH_SIZE, BENCH_MAX_LATENCY_MS.

Run inside bench/.venvs/bentoml: `bentoml serve bench.peers.bentoml_service:Decoder --port P`.
"""

from __future__ import annotations

import os

import bentoml
import numpy as np

from bench.peers.common import PeerDecoder

MAX_BATCH_SIZE = int(os.environ.get("BENCH_MAX_BATCH_SIZE", "64"))
MAX_LATENCY_MS = int(os.environ.get("BENCH_MAX_LATENCY_MS", "60000"))


@bentoml.service(workers=1, traffic={"timeout": 60})
class Decoder:
    """One worker, one ONNX Runtime session, BentoML's adaptive batcher in front of it."""

    def __init__(self) -> None:
        self.decoder = PeerDecoder(
            os.environ["BENCH_MODEL"], int(os.environ.get("BENCH_THREADS", "2"))
        )

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def decode(self, latents: np.ndarray) -> list[str]:
        """Latents [N,D] (N summed over the batched requests) -> N base64 PNGs."""
        return self.decoder.pngs(latents.astype(np.float32, copy=False))
