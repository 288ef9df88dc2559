"""What one loaded model version is made of: its manifest, its graphs and the runners in front of
them (the registry's `LoadedModel` adds the adapter of its kind family)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.repository.manifest import Manifest
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
        """The execution provider actually running the graphs."""
        return self.encoder.graph.provider

    def start(self) -> None:
        """Starts the batching loops."""
        self.encode_runner.start()
        self.decode_runner.start()
        if self.vq is not None:
            self.vq.runner.start()

    async def close(self) -> None:
        """Stops the runners."""
        await self.encode_runner.stop()
        await self.decode_runner.stop()
        if self.vq is not None:
            await self.vq.runner.stop()
