"""What one loaded model version is made of: its manifest, its graphs and the runners in front of
them (the registry's `LoadedModel` adds the adapter of its kind family), and the fp32 ("exact")
graphs opened on demand where a graph's chosen precision is lower."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app import metrics
from app.repository.manifest import Manifest
from app.runtime.choice import EngineChoice
from app.serving.batcher import Runner
from app.serving.exact import ExactTwin
from app.serving.packing import PackedGraph
from app.serving.vq import VQParts

if TYPE_CHECKING:
    from app.serving.video.graphs import VideoGraphs


class ExactRunner(ExactTwin[Runner]):
    """The exact twin of an image model's graph: a runner in front of its fp32 graph."""

    async def runner(self) -> Runner:
        """The started runner (see `ExactTwin.get`)."""
        return await self.get()


@dataclass
class ModelParts:
    """One version in memory: its manifest, its two graphs and the runners in front of them
    (and a VQ-VAE's codebook and prior); `exact`: the fp32 graphs, opened on demand, of the
    graphs (encoder, decoder) chosen at a lower precision; `video`: a video model's graphs as
    its time walks run them (its `encoder` and `decoder` are then the chunk graphs, and their
    runners unused)."""

    manifest: Manifest
    directory: Path
    encoder: PackedGraph
    decoder: PackedGraph
    encode_runner: Runner
    decode_runner: Runner
    vq: VQParts | None = None
    exact: dict[str, ExactRunner] = field(default_factory=dict)
    video: VideoGraphs | None = None

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

    @property
    def exact_engines(self) -> dict[str, dict[str, object]]:
        """For `GET /models/{name}`, per graph chosen below fp32: the fp32 spec its exact twin
        runs on (for the /remote routes), and whether a request has opened it yet."""
        return {
            which: {**lazy.spec.as_json(), "routes": "/remote", "opened": lazy.opened is not None}
            for which, lazy in self.exact.items()
        }

    async def exact_runner(self, which: str) -> Runner:
        """The runner of graph `which` (encoder, decoder) in fp32: its exact graph (opened on the
        first call), or the chosen one where that is fp32 already."""
        lazy = self.exact.get(which)
        if lazy is not None:
            return await lazy.runner()
        return self.encode_runner if which == "encoder" else self.decode_runner

    @property
    def busy(self) -> bool:
        """Whether a request is queued or computing on any of the version's runners."""
        runners = [self.encode_runner, self.decode_runner]
        if self.vq is not None:
            runners.append(self.vq.runner)
        if self.video is not None and self.video.busy:
            return True
        return any(r.busy for r in runners) or any(lazy.busy for lazy in self.exact.values())

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
        for lazy in self.exact.values():
            await lazy.stop()
        if self.vq is not None:
            await self.vq.runner.stop()
        if self.video is not None:
            await self.video.stop()
