"""A video version's graphs as serving runs them: per direction (decoder, encoder) the graph of
every chunk and, for the causal_cache scheme, the first chunk's graph (`<graph>_first.onnx`), on
one engine, behind one `Lane` (a direction's calls take turns, whichever graph they run); and one
step of a clip's time walk (`app/serving/video/timeline.py`) run on them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.arrays import FloatArray
from app.config import Settings
from app.repository.manifest import Manifest, TimeChunks
from app.runtime.choice import EngineChoice
from app.runtime.engines import EngineSpec
from app.runtime.graph import Graph
from app.serving.engine_choice import Opening, engine_options
from app.serving.exact import ExactTwin
from app.serving.video.lanes import Lane
from app.serving.video.timeline import Caches, Step, StepRunner, walk

INPUTS = {"decoder": "z", "encoder": "x"}
SERIES = {"decoder": ("x",), "encoder": ("mu", "logvar")}
"""The outputs a direction's walk carries along time (an encoder's concatenated on channels)."""

CallGraph = Callable[[Graph, dict[str, np.ndarray], float | None], Awaitable[dict[str, FloatArray]]]
"""Runs one engine call (a lane's `run`)."""
DeadlineOf = Callable[[Step], float | None]
"""The deadline of one engine call of a walk (made when the walk asks for the call)."""


def whole_clip(frames: int) -> TimeChunks:
    """Chunks that take a clip of `frames` input frames in one call (a graph with no chunks)."""
    return TimeChunks(scheme="temporal_tiles", chunk_frames=frames + 1)


@dataclass
class TimeGraph:
    """One direction of a video model: its chunk graph, its first chunk's graph (causal_cache
    only), how it walks time (None: a clip in one call) and the lane its calls queue in."""

    which: str
    chunk: Graph
    first: Graph | None
    chunks: TimeChunks | None
    lane: Lane

    @property
    def busy(self) -> bool:
        """Whether a call is waiting for the lane or computing."""
        return self.lane.busy

    def start(self) -> None:
        """Nothing to start: the lane runs calls as they come."""

    async def stop(self) -> None:
        """Stops the lane (a call running finishes in its thread)."""
        self.lane.stop()

    def chunks_for(self, frames: int) -> TimeChunks:
        """How a clip of `frames` input frames is walked."""
        return self.chunks or whole_clip(frames)

    def runner(self, deadline: DeadlineOf, call: CallGraph | None = None) -> StepRunner:
        """Runs one step of a walk: its frames (and caches) in, the series and caches out; each
        engine call in the direction's lane (or by `call`)."""
        call = call or self.lane.run
        name, series = INPUTS[self.which], SERIES[self.which]
        caches = self.chunks.caches if self.chunks is not None and self.first is not None else 0

        async def run(step: Step) -> tuple[FloatArray, Caches]:
            graph = self.first if step.first and self.first is not None else self.chunk
            feeds = {name: np.ascontiguousarray(step.frames, np.float32)}
            for index, cache in enumerate(step.caches):
                feeds[f"cache_in_{index}"] = cache
            out = await call(graph, feeds, deadline(step))
            parts = [out[key] for key in series if key in out] or [out[graph.output_names[0]]]
            joined = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
            return joined, [out[f"cache_out_{index}"] for index in range(caches)]

        return run


class ExactDirection(ExactTwin[TimeGraph]):
    """A direction's fp32 graphs where the chosen ones run at a lower precision, with a lane of
    their own, opened by the first request that asks for exact results (see `ExactTwin`)."""

    async def direction(self) -> TimeGraph:
        """The fp32 direction, opened on the first call."""
        return await self.get()


@dataclass
class VideoGraphs:
    """A video version's two directions, the engine chosen for each (and why), and the fp32
    twins, opened on demand, of those chosen at a lower precision (`exact`, by direction)."""

    decoder: TimeGraph
    encoder: TimeGraph
    decoder_choice: EngineChoice
    encoder_choice: EngineChoice
    exact: dict[str, ExactDirection] = field(default_factory=dict)

    @property
    def busy(self) -> bool:
        """Whether a call is waiting or computing in any lane, or an exact twin is opening."""
        twins = any(lazy.busy for lazy in self.exact.values())
        return twins or self.decoder.busy or self.encoder.busy

    async def stop(self) -> None:
        """Stops every lane (calls running finish in their threads); a twin still opening is
        stopped as it opens."""
        self.decoder.lane.stop()
        self.encoder.lane.stop()
        for lazy in self.exact.values():
            await lazy.stop()


def graph_files(manifest: Manifest, which: str) -> tuple[str, str | None]:
    """The files of a direction: `<which>.onnx`, and `<which>_first.onnx` for causal_cache."""
    chunks = _chunks(manifest, which)
    first = (
        f"{which}_first.onnx" if chunks is not None and chunks.scheme == "causal_cache" else None
    )
    return f"{which}.onnx", first


def _chunks(manifest: Manifest, which: str) -> TimeChunks | None:
    video = manifest.video
    if video is None:
        raise ValueError(f"model {manifest.name} has no video spec")
    return video.decode if which == "decoder" else video.encode


def open_direction(
    directory: Path, manifest: Manifest, which: str, spec: EngineSpec, settings: Settings
) -> TimeGraph:
    """A direction's graphs opened on `spec` (float16 exports behind a float32 face), and its
    lane."""
    # ONNX Runtime's arena is kept between runs (not shrunk as a spatial model's is): a walk
    # calls the same shapes chunk after chunk, and shrinking after each call made a 256 px
    # HunyuanVideo-style clip 10-20% slower. A version holds its largest call's working memory
    # after it, which the budget allowed for.
    options = engine_options(settings)
    dtype = getattr(manifest.dtypes, which)
    chunk_file, first_file = graph_files(manifest, which)
    chunk = Opening(directory / chunk_file, dtype, options)(spec)
    first = None if first_file is None else Opening(directory / first_file, dtype, options)(spec)
    lane = Lane(manifest.name, which, settings.batches_in_flight)
    return TimeGraph(which, chunk, first, _chunks(manifest, which), lane)


async def _run_inline(
    graph: Graph, feeds: dict[str, np.ndarray], deadline: float | None = None
) -> dict[str, FloatArray]:
    return graph.run_feeds(feeds)


def walk_now(direction: TimeGraph, x: FloatArray, total_out: int) -> FloatArray:
    """A whole clip walked through a direction in this thread, outside its lane (a load's
    warm-up and quality gate, before the version serves; no event loop needed)."""

    async def collect() -> FloatArray:
        chunks = direction.chunks_for(x.shape[2])
        run = direction.runner(lambda step: None, _run_inline)
        pieces = [piece async for piece in walk(x, chunks, total_out, run)]
        return np.concatenate(pieces, axis=2)

    return asyncio.run(collect())
