"""app/runtime/choice.py: the fastest candidate in the trial that passes the gate against fp32
wins, the losers are let go, and the reason says why in words. Real graphs on both engines; the
gate and trial are the test's (serving brings the real ones)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.runtime.choice import GateResult, choose
from app.runtime.cpu import this_cpu
from app.runtime.engines import EngineOptions, EngineSpec, open_graph
from app.runtime.graph import Graph
from tests.support.tiny_graphs import conv_graph

ORT32 = EngineSpec("onnxruntime", "fp32")
OV32 = EngineSpec("openvino", "fp32")
OV16 = EngineSpec("openvino", "bf16", "cpu", "the CPU has AMX")
AUTO = [ORT32, OV32, OV16]
SAMPLE = np.random.default_rng(0).standard_normal((1, 4, 24, 24)).astype(np.float32)


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return conv_graph(tmp_path_factory.mktemp("graphs") / "conv.onnx")


class Opener:
    """Opens real graphs, remembering each (weakly) to see which are let go."""

    def __init__(self, path: Path, refuse: str | None = None) -> None:
        self.path, self.refuse = path, refuse
        self.opened: dict[str, weakref.ref[Graph]] = {}

    def __call__(self, spec: EngineSpec) -> Graph:
        if spec.label == self.refuse:
            raise RuntimeError("unsupported operator")
        graph = open_graph(self.path, spec, EngineOptions(threads=1))
        self.opened[spec.label] = weakref.ref(graph)
        return graph


def timings(**seconds: float) -> Callable[[Graph], float]:
    """A trial that answers each engine's time from a table (`openvino_bf16=0.1`)."""

    def trial(graph: Graph) -> float:
        graph.run(SAMPLE)
        return seconds[f"{graph.engine}_{graph.precision}"]

    return trial


def psnr_gate(threshold: float) -> Callable[[Graph, Graph], GateResult]:
    """A real PSNR gate over the graph's "image" output in [-1, 1]."""

    def gate(candidate: Graph, reference: Graph) -> GateResult:
        got, want = candidate.run(SAMPLE)["image"], reference.run(SAMPLE)["image"]
        mse = float(np.mean((got - want) ** 2))
        value = 10 * np.log10(4.0 / mse) if mse > 0 else float("inf")
        return GateResult(value >= threshold, value, "dB", threshold)

    return gate


def fixed_gate(value: float, threshold: float = 40.0) -> Callable[[Graph, Graph], GateResult]:
    return lambda candidate, reference: GateResult(value >= threshold, value, "dB", threshold)


def test_the_fastest_candidate_that_passes_wins_and_says_why(path: Path) -> None:
    trial = timings(onnxruntime_fp32=0.40, openvino_fp32=0.50, openvino_bf16=0.10)
    graph, choice = choose(AUTO, Opener(path), fixed_gate(44.9), trial)
    assert (graph.engine, graph.precision) == ("openvino", "bf16") and choice.spec == OV16
    assert choice.reason.startswith(
        "openvino bf16: the CPU has AMX; PSNR 44.9 dB >= 40 against fp32; "
        "4.0x onnxruntime fp32 in the load trial"
    )
    assert [t.seconds for t in choice.trials] == [0.40, 0.50, 0.10]


def test_a_candidate_that_misses_the_gate_is_refused_and_fp32_serves(path: Path) -> None:
    trial = timings(onnxruntime_fp32=0.40, openvino_fp32=0.50, openvino_bf16=0.10)
    graph, choice = choose(AUTO, Opener(path), fixed_gate(31.2), trial)
    assert choice.spec == ORT32 and graph.engine == "onnxruntime"
    assert "openvino bf16 refused: PSNR 31.2 dB < 40 against fp32" in choice.reason
    refused = choice.trials[-1]
    assert refused.seconds is None and refused.gate is not None and not refused.gate.passed


def test_the_faster_fp32_engine_serves_when_no_lower_precision_is_a_candidate(path: Path) -> None:
    trial = timings(onnxruntime_fp32=0.40, openvino_fp32=0.30)
    graph, choice = choose([ORT32, OV32], Opener(path), fixed_gate(0.0), trial)
    assert choice.spec == OV32 and graph.engine == "openvino"
    assert "1.3x onnxruntime fp32 in the load trial" in choice.reason


@pytest.mark.skipif(not this_cpu().native_bf16(), reason="no native bf16 here")
@pytest.mark.parametrize(("threshold", "winner"), [(20.0, OV16), (200.0, ORT32)])
def test_a_real_psnr_gate_decides_bf16(path: Path, threshold: float, winner: EngineSpec) -> None:
    # bf16 on AMX is close to fp32 (well above 20 dB) but not identical (never 200 dB).
    trial = timings(onnxruntime_fp32=0.4, openvino_fp32=0.5, openvino_bf16=0.1)
    graph, choice = choose(AUTO, Opener(path), psnr_gate(threshold), trial)
    assert choice.spec == winner and graph.precision == winner.precision
    gate = choice.trials[-1].gate
    assert gate is not None and 20 < gate.value < 200


def test_the_candidates_not_chosen_are_let_go(path: Path) -> None:
    opener = Opener(path)
    trial = timings(onnxruntime_fp32=0.40, openvino_fp32=0.50, openvino_bf16=0.10)
    graph, _ = choose(AUTO, opener, fixed_gate(45.0), trial)
    gc.collect()
    alive = {label for label, ref in opener.opened.items() if ref() is not None}
    assert alive == {"openvino bf16"} and opener.opened["openvino bf16"]() is graph


def test_named_engine_and_precision_open_that_one_without_gate_or_trial(path: Path) -> None:
    def never(*args: object) -> Any:
        raise AssertionError("no gate or trial for a single candidate")

    graph, choice = choose([OV16], Opener(path), never, never)
    assert graph.engine == "openvino" and choice.spec == OV16
    assert choice.reason == "openvino bf16: the one the settings allow (the CPU has AMX)"


def test_a_candidate_that_does_not_open_or_cannot_be_judged_is_refused(path: Path) -> None:
    trial = timings(onnxruntime_fp32=0.4, openvino_fp32=0.5, openvino_bf16=0.1)
    _, choice = choose(AUTO, Opener(path, refuse="openvino fp32"), fixed_gate(45.0), trial)
    assert choice.spec == OV16
    assert "openvino fp32 refused: did not open: unsupported operator" in choice.reason

    def broken(candidate: Graph, reference: Graph) -> GateResult:
        raise FloatingPointError("NaN in the output")

    _, choice = choose(AUTO, Opener(path), broken, trial)
    assert choice.spec == ORT32 and "quality gate failed to run: NaN" in choice.reason


def test_a_candidate_that_opens_but_cannot_run_is_refused(path: Path) -> None:
    times = timings(onnxruntime_fp32=0.4, openvino_fp32=0.5, openvino_bf16=0.1)

    def trial(graph: Graph) -> float:
        if graph.engine == "openvino":
            raise RuntimeError("cannot reshape to a static shape")
        return times(graph)

    graph, choice = choose(AUTO, Opener(path), fixed_gate(45.0), trial)
    assert choice.spec == ORT32 and graph.engine == "onnxruntime"
    assert "openvino fp32 refused: failed its trial: cannot reshape" in choice.reason
    assert "openvino bf16 refused: failed its trial: cannot reshape" in choice.reason


def test_no_fp32_engine_opening_is_an_error(path: Path) -> None:
    opener = Opener(path, refuse="onnxruntime fp32")
    with pytest.raises(RuntimeError, match="no fp32 engine ran the graph"):
        choose([ORT32, OV16], opener, fixed_gate(45.0), timings(onnxruntime_fp32=1.0))


def test_the_choice_as_json_has_the_spec_reason_and_trials(path: Path) -> None:
    trial = timings(onnxruntime_fp32=0.4, openvino_fp32=0.5, openvino_bf16=0.1)
    _, choice = choose(AUTO, Opener(path), fixed_gate(44.9), trial)
    shown = choice.as_json()
    assert (shown["engine"], shown["precision"], shown["device"]) == ("openvino", "bf16", "cpu")
    assert shown["reason"] == choice.reason
    trials = shown["trials"]
    assert isinstance(trials, list) and len(trials) == 3
    assert trials[2]["gate"] == {
        "measure": "PSNR",
        "value": 44.9,
        "unit": "dB",
        "threshold": 40.0,
        "sense": ">=",
        "passed": True,
    }
