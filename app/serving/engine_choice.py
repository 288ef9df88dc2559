"""Which engine and precision run a version's graphs: the candidates the settings and the device
allow (`app/runtime/engines.candidates`), each lower precision gated against fp32 on the
version's own check inputs (`quality`), each timed on a representative call, the fastest that
passes kept (`app/runtime/choice.choose`). This module says, per model family, what the gate
and the trial are; `spatial_graphs` does the same for spatial models with these helpers.

Flat models (vae, cvae, hvae): the decoder is chosen first, gated by the IWAE bound's shift
with the fp32 encoder; then the encoder, gated by the shift of the bound it gives with the
chosen decoder. A VQ-VAE has no bound: its decoder is gated by the PSNR of the images it decodes
from seeded code grids, its encoder by the PSNR of fp32's decoding of the codes it picks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from app.arrays import FloatArray
from app.config import Settings
from app.runtime.choice import EngineChoice, Gate, GateResult, TrialRun, choose
from app.runtime.cpu import this_cpu
from app.runtime.cuda import cuda_available
from app.runtime.engines import EngineOptions, EngineSpec, candidates, open_graph
from app.runtime.graph import Graph
from app.serving import quality

logger = logging.getLogger(__name__)

FlatGate = Literal["iwae", "codes"]
"""How a flat family's graphs are judged: the IWAE bound, or a VQ-VAE's decoded code grids."""
Outputs = dict[str, FloatArray]


def engine_options(settings: Settings) -> EngineOptions:
    """How the settings open graphs: threads, spinning, OpenVINO's compiled shapes."""
    return EngineOptions(settings.threads, settings.ort_spinning, settings.compiled_shapes)


def engine_specs(settings: Settings) -> list[EngineSpec]:
    """The candidates `VAE_ENGINE` and `VAE_PRECISION` allow on this machine, fp32 first."""
    return candidates(settings.engine, settings.precision, this_cpu(), cuda_available())


@dataclass(frozen=True)
class CastingGraph:
    """A graph exported in float16, behind a float32 face: float32 rows in, cast down; float32
    outputs back, whatever engine runs it."""

    inner: Graph
    dtype: type[np.floating] = np.float16

    @property
    def input_name(self) -> str:
        """The first input's name."""
        return self.inner.input_name

    @property
    def input_names(self) -> list[str]:
        """Every input's name."""
        return self.inner.input_names

    @property
    def output_names(self) -> list[str]:
        """Every output's name."""
        return self.inner.output_names

    @property
    def input_width(self) -> int | None:
        """The first input's fixed second dimension, if any."""
        return self.inner.input_width

    @property
    def provider(self) -> str:
        """What runs the graph."""
        return self.inner.provider

    @property
    def device(self) -> str:
        """cpu or cuda."""
        return self.inner.device

    @property
    def engine(self) -> str:
        """onnxruntime or openvino."""
        return self.inner.engine

    @property
    def precision(self) -> str:
        """The arithmetic the engine runs."""
        return self.inner.precision

    def run(self, inputs: FloatArray) -> Outputs:
        """One batch in the graph's dtype; float32 out."""
        return self.run_feeds({self.input_name: inputs})

    def run_feeds(self, feeds: dict[str, np.ndarray]) -> Outputs:
        """Every input named (float ones cast down); float32 out."""
        cast = {
            name: value.astype(self.dtype) if value.dtype.kind == "f" else value
            for name, value in feeds.items()
        }
        outputs = self.inner.run_feeds(cast)
        return {name: np.asarray(value, np.float32) for name, value in outputs.items()}


@dataclass
class Opening:
    """Opens one graph file on any candidate spec (behind a float32 face when it was exported in
    float16), handing back the already-open reference for the reference spec, so the graph
    the gates compared against is not opened twice."""

    path: Path
    dtype: str
    options: EngineOptions
    reference_spec: EngineSpec | None = None
    reference: Graph | None = None

    def __call__(self, spec: EngineSpec) -> Graph:
        """The graph on `spec`."""
        if self.reference is not None and spec == self.reference_spec:
            return self.reference
        graph = open_graph(self.path, spec, self.options)
        return graph if self.dtype == "float32" else CastingGraph(graph)

    def open_reference(self, specs: list[EngineSpec]) -> Graph | None:
        """Opens the first fp32 spec (the gates' reference); None when there is none to gate
        against (one candidate, or only lower precisions: the settings' choice stands)."""
        references = [spec for spec in specs if spec.reference]
        if len(specs) < 2 or not references:
            return None
        self.reference_spec = references[0]
        self.reference = self(self.reference_spec)
        return self.reference


@dataclass
class Race:
    """Times candidates in turn on the same steps: after one untimed call of the first step (it
    compiles that shape, allocates buffers), up to `rounds` timed rounds of the steps; a
    candidate's time is its best round. A candidate that takes longer than the best time so
    far in any round stops there: it has lost (the rest of the round, an engine compiling shape
    after shape, would only slow the load down). So a later candidate wins only by being
    faster in every round: noise keeps the first (ONNX Runtime fp32), not a lucky challenger."""

    rounds: int = 1
    best: float = float("inf")

    def time(self, steps: Sequence[Callable[[], object]], warm_up: bool = True) -> float:
        """Seconds of the candidate's best round (a lower bound when it stopped early);
        `warm_up` False skips the untimed call, for a graph that ran this shape already."""
        if warm_up:
            steps[0]()
        mine = float("inf")
        for _ in range(self.rounds):
            start = time.perf_counter()
            for step in steps:
                step()
                elapsed = time.perf_counter() - start
                if elapsed > self.best:
                    return elapsed
            mine = min(mine, elapsed)
        self.best = mine
        return mine


def passed_psnr(value: float) -> GateResult:
    """The image gate's verdict on a PSNR in dB."""
    return GateResult(value >= quality.PSNR_DB, value, "dB", quality.PSNR_DB, "PSNR", ">=")


def passed_shift(value: float) -> GateResult:
    """The flat gate's verdict on the IWAE bound's shift in nats."""
    return GateResult(
        value <= quality.IWAE_NATS, value, "nats", quality.IWAE_NATS, "IWAE bound shift", "<="
    )


def no_gate(candidate: Graph, reference: Graph) -> GateResult:
    """For a choice with nothing to gate against: never called by `choose`."""
    raise RuntimeError("no fp32 reference to gate against")


ChoiceKey = tuple[str, tuple[EngineSpec, ...]]
_chosen: dict[ChoiceKey, EngineChoice] = {}
_chosen_lock = threading.Lock()


def _key(opening: Opening, specs: list[EngineSpec]) -> ChoiceKey:
    return str(opening.path), tuple(specs)


def remembered(opening: Opening, specs: list[EngineSpec]) -> EngineChoice | None:
    """The choice made for this graph file among these candidates earlier in this process (a
    version's files never change), if any."""
    with _chosen_lock:
        return _chosen.get(_key(opening, specs))


def pick(
    opening: Opening, specs: list[EngineSpec], gate: Gate, trial: TrialRun
) -> tuple[Graph, EngineChoice]:
    """`choose` among `specs`, opening through `opening`; a graph chosen for before in this
    process (a version unloaded under the memory budget, loading again) opens on its choice
    with no gate and no trial."""
    known = remembered(opening, specs)
    if known is not None:
        return opening(known.spec), known
    graph, choice = choose(
        specs, opening, gate if opening.reference is not None else no_gate, trial
    )
    with _chosen_lock:
        _chosen[_key(opening, specs)] = choice
    path = opening.path
    logger.info("%s:%s %s: %s", path.parent.parent.name, path.parent.name, path.stem, choice.reason)
    return graph, choice


def exact_spec(choice: EngineChoice | None, settings: Settings) -> EngineSpec | None:
    """The fp32 spec a graph chosen as `choice` runs on where exact results are asked for: None
    when the choice is fp32 already (or none was made); else the first fp32 candidate the engine
    setting allows, the gates' reference (ONNX Runtime under `auto`). Not the fp32 engine
    fastest in the load trial: at 128 px OpenVINO fp32 wins it, yet at 512 px ONNX Runtime is
    faster (kl-small 1.9 s against 2.6 s, kl-sd 22 s against 26 s, on a busy CPU) and keeps
    far less after a decode (its arena shrinks: kl-sd +215 MiB against OpenVINO's +1.2 GiB)."""
    if choice is None or choice.spec.reference:
        return None
    return engine_specs(settings.model_copy(update={"precision": "fp32"}))[0]
