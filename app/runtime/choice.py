"""Choosing a graph's engine and precision: open the fp32 references, then each lower-precision
candidate; keep the fastest in the caller's trial among those that pass the caller's quality gate
against fp32 (fp32 always passes), and say why in words a user understands."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from app.runtime.engines import EngineSpec
from app.runtime.graph import Graph

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GateResult:
    """A quality gate's verdict on a candidate against the fp32 reference: `value` `unit` (e.g.
    44.9 dB) held against `threshold` by `sense` (`>=` for PSNR, `<=` for a bound's shift),
    `measure` names it (`PSNR`, `IWAE bound shift`)."""

    passed: bool
    value: float
    unit: str
    threshold: float
    measure: str = "PSNR"
    sense: str = ">="

    @property
    def text(self) -> str:
        """`PSNR 44.9 dB >= 40 against fp32`, or `PSNR 31.2 dB < 40 against fp32`."""
        sense = self.sense if self.passed else {">=": "<", "<=": ">"}.get(self.sense, "!")
        return (
            f"{self.measure} {self.value:.3g} {self.unit} {sense} {self.threshold:g} against fp32"
        )

    def as_json(self) -> dict[str, object]:
        """The verdict as JSON."""
        return {
            "measure": self.measure,
            "value": self.value,
            "unit": self.unit,
            "threshold": self.threshold,
            "sense": self.sense,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class Trial:
    """What became of one candidate: its trial time (best of the caller's runs, seconds), its
    gate (None for fp32), and why it was not kept (`refused`), if it was not."""

    spec: EngineSpec
    seconds: float | None = None
    gate: GateResult | None = None
    refused: str = ""

    def as_json(self) -> dict[str, object]:
        """The trial as JSON."""
        return {
            **self.spec.as_json(),
            "seconds": self.seconds,
            "gate": self.gate.as_json() if self.gate else None,
            "refused": self.refused or None,
        }


@dataclass(frozen=True)
class EngineChoice:
    """The spec chosen for a graph, the reason in words, and every candidate's trial."""

    spec: EngineSpec
    reason: str
    trials: tuple[Trial, ...] = field(default_factory=tuple)

    def as_json(self) -> dict[str, object]:
        """For `GET /models/{name}`: engine, precision, device, reason, trials."""
        return {
            **self.spec.as_json(),
            "reason": self.reason,
            "trials": [trial.as_json() for trial in self.trials],
        }


Opener = Callable[[EngineSpec], Graph]
Gate = Callable[[Graph, Graph], GateResult]
TrialRun = Callable[[Graph], float]


@dataclass
class _Kept:
    graph: Graph
    spec: EngineSpec
    seconds: float


def _open(open_graph: Opener, spec: EngineSpec, trials: list[Trial]) -> Graph | None:
    try:
        return open_graph(spec)
    except Exception as error:  # a candidate that does not open is not chosen
        logger.warning("%s did not open: %s", spec.label, error)
        trials.append(Trial(spec, refused=f"did not open: {error}"))
        return None


def _timed(trial: TrialRun, graph: Graph) -> float | str:
    """The trial's seconds, or why it failed (an engine may open a graph it cannot run)."""
    try:
        return trial(graph)
    except Exception as error:  # a candidate that does not run is not chosen
        logger.warning("%s failed its trial: %s", graph.engine, error)
        return f"failed its trial: {error}"


def _references(
    specs: list[EngineSpec], open_graph: Opener, trial: TrialRun, trials: list[Trial]
) -> tuple[_Kept, _Kept]:
    """The first fp32 spec that opens (the gates' reference) and the fastest fp32 one."""
    reference: _Kept | None = None
    fastest: _Kept | None = None
    for spec in specs:
        graph = _open(open_graph, spec, trials)
        if graph is None:
            continue
        seconds = _timed(trial, graph)
        if isinstance(seconds, str):
            trials.append(Trial(spec, refused=seconds))
            continue
        kept = _Kept(graph, spec, seconds)
        trials.append(Trial(spec, seconds))
        reference = reference or kept
        if fastest is None or kept.seconds < fastest.seconds:
            fastest = kept
    if reference is None or fastest is None:
        raise RuntimeError("no fp32 engine ran the graph: " + "; ".join(t.refused for t in trials))
    return reference, fastest


def _challenge(
    spec: EngineSpec, graph: Graph, reference: _Kept, gate: Gate, trial: TrialRun
) -> Trial:
    """A lower-precision candidate gated against the reference, timed if it passes."""
    try:
        result = gate(graph, reference.graph)
    except Exception as error:  # a gate that cannot judge refuses
        return Trial(spec, refused=f"its quality gate failed to run: {error}")
    if not result.passed:
        return Trial(spec, gate=result, refused=result.text)
    seconds = _timed(trial, graph)
    if isinstance(seconds, str):
        return Trial(spec, gate=result, refused=seconds)
    return Trial(spec, seconds, result)


def _reason(chosen: _Kept, reference: _Kept, trials: list[Trial]) -> str:
    """Why `chosen`: its note and gate, its speed against the reference, what was refused, and
    every candidate's trial time."""
    parts = [chosen.spec.note] if chosen.spec.note else []
    mine = next(t for t in trials if t.spec == chosen.spec)
    if mine.gate is not None:
        parts.append(mine.gate.text)
    timed = [t for t in trials if t.seconds is not None]
    if chosen.spec != reference.spec:
        ratio = reference.seconds / chosen.seconds
        parts.append(f"{ratio:.1f}x {reference.spec.label} in the load trial")
    elif len(timed) > 1:
        parts.append("the fastest in the load trial")
    parts += [
        f"{t.spec.label} passed ({t.gate.text}) but was slower"
        for t in timed
        if t.gate is not None and t.spec != chosen.spec
    ]
    parts += [f"{t.spec.label} refused: {t.refused}" for t in trials if t.refused]
    if len(timed) > 1:
        times = ", ".join(f"{t.spec.label} {1000 * (t.seconds or 0):.3g} ms" for t in timed)
        parts.append(f"trial: {times}")
    return f"{chosen.spec.label}: " + "; ".join(parts or ["fp32, the reference"])


def choose(
    candidates: list[EngineSpec], open_graph: Opener, gate: Gate, trial: TrialRun
) -> tuple[Graph, EngineChoice]:
    """The graph to serve and why. `candidates` as `engines.candidates` orders them (fp32
    first); `open_graph(spec)` opens one; `gate(candidate, reference)` judges a lower-precision
    candidate against the first fp32 graph; `trial(graph)` times it on representative inputs
    (seconds, best of a few runs). The fastest candidate that passes wins (fp32 always passes);
    the others are dropped as soon as they lose, so their memory goes back. A single candidate
    (the settings named engine and precision) is opened with no gate and no trial."""
    if not candidates:
        raise ValueError("no candidate engine")
    if len(candidates) == 1:
        spec = candidates[0]
        note = f" ({spec.note})" if spec.note else ""
        reason = f"{spec.label}: the one the settings allow{note}"
        return open_graph(spec), EngineChoice(spec, reason, (Trial(spec),))
    trials: list[Trial] = []
    reference, best = _references([s for s in candidates if s.reference], open_graph, trial, trials)
    for spec in (s for s in candidates if not s.reference):
        graph = _open(open_graph, spec, trials)
        if graph is None:
            continue
        result = _challenge(spec, graph, reference, gate, trial)
        trials.append(result)
        if result.seconds is not None and result.seconds < best.seconds:
            best = _Kept(graph, spec, result.seconds)
        del graph
    choice = EngineChoice(best.spec, _reason(best, reference, trials), tuple(trials))
    return best.graph, choice
