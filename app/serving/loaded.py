"""What one loaded model version is made of: its manifest, its graphs and the runners in front of
them (the registry's `LoadedModel` adds the adapter of its kind family)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from app import metrics
from app.repository.manifest import Manifest
from app.runtime.choice import EngineChoice
from app.serving.batcher import Runner
from app.serving.packing import PackedGraph
from app.serving.vq import VQParts


@dataclass
class ModelParts:
    """One version in memory: its manifest, its two graphs and the runners in front of them
    (and a VQ-VAE's codebook and prior)."""

    manifest: Manifest
    directory: Path
    encoder: PackedGraph
    decoder: PackedGraph
    encode_runner: Runner
    decode_runner: Runner
    vq: VQParts | None = None

    @property
    def name(self) -> str:
        """The model's name."""
        return self.manifest.name

    @property
    def version(self) -> int:
        """The version number."""
        return self.manifest.version

    @property
    def provider(self) -> str:
        """What actually runs the decoder (e.g. CPUExecutionProvider, openvino:CPU)."""
        return self.decoder.graph.provider

    @property
    def engines(self) -> dict[str, EngineChoice]:
        """The engine, precision and device chosen for each graph (encoder, decoder), and why."""
        graphs = {"encoder": self.encoder, "decoder": self.decoder}
        return {which: g.choice for which, g in graphs.items() if g.choice is not None}

    def _engine_labels(self) -> list[tuple[str, str, str, str, str]]:
        return [
            (self.name, str(self.version), which, choice.spec.engine, choice.spec.precision)
            for which, choice in self.engines.items()
        ]

    def start(self) -> None:
        """Starts the batching loops; `vae_model_engine_info` shows the engines chosen."""
        for labels in self._engine_labels():
            metrics.MODEL_ENGINE.labels(*labels).set(1)
        self.encode_runner.start()
        self.decode_runner.start()
        if self.vq is not None:
            self.vq.runner.start()

    async def close(self) -> None:
        """Stops the runners; the version's engines leave `vae_model_engine_info`."""
        for labels in self._engine_labels():
            with contextlib.suppress(KeyError):  # never started, or closed twice
                metrics.MODEL_ENGINE.remove(*labels)
        await self.encode_runner.stop()
        await self.decode_runner.stop()
        if self.vq is not None:
            await self.vq.runner.stop()
