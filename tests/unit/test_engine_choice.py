"""engine_choice's parts on real engines: a float16 graph behind a float32 face on either engine,
the reference opened once and handed back, the race that stops a candidate once it has lost,
the gates' verdicts, and a choice the settings make alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from app.runtime.engines import EngineOptions, EngineSpec
from app.runtime.graph import Graph
from app.serving import quality
from app.serving.engine_choice import (
    CastingGraph,
    Opening,
    Race,
    passed_psnr,
    passed_shift,
    pick,
    remembered,
)

ORT = EngineSpec("onnxruntime", "fp32")
OPENVINO = EngineSpec("openvino", "fp32")


def _doubling_graph(path: Path, elem: int) -> Path:
    """y = 2x over [N, 3], in `elem` (float or float16)."""
    two = helper.make_tensor("two", elem, [], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", elem, ["N", 3])],
        [helper.make_tensor_value_info("y", elem, ["N", 3])],
        [two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("spec", [ORT, OPENVINO], ids=lambda s: s.engine)
def test_a_float16_graph_takes_and_gives_float32_on_either_engine(
    tmp_path: Path, spec: EngineSpec
) -> None:
    path = _doubling_graph(tmp_path / "half.onnx", TensorProto.FLOAT16)
    graph = Opening(path, "float16", EngineOptions(threads=1))(spec)
    assert isinstance(graph, CastingGraph) and graph.engine == spec.engine
    x = np.array([[0.5, -1.25, 3.0]], np.float32)
    out = graph.run(x)["y"]
    assert out.dtype == np.float32 and np.array_equal(out, 2 * x)
    assert graph.input_names == ["x"] and graph.output_names == ["y"]


def test_the_reference_is_opened_once_and_handed_back(tmp_path: Path) -> None:
    path = _doubling_graph(tmp_path / "full.onnx", TensorProto.FLOAT)
    opening = Opening(path, "float32", EngineOptions(threads=1))
    reference = opening.open_reference([ORT, OPENVINO, EngineSpec("openvino", "bf16")])
    assert reference is not None and reference.engine == "onnxruntime"
    assert opening(ORT) is reference
    other = opening(OPENVINO)
    assert other is not reference and other.engine == "openvino"


def test_with_one_candidate_there_is_no_reference_and_the_settings_choose(tmp_path: Path) -> None:
    path = _doubling_graph(tmp_path / "full.onnx", TensorProto.FLOAT)
    opening = Opening(path, "float32", EngineOptions(threads=1))
    assert opening.open_reference([OPENVINO]) is None
    assert opening.open_reference([EngineSpec("openvino", "bf16")]) is None
    calls: list[str] = []

    def trial(graph: Graph) -> float:
        calls.append(graph.engine)
        return 0.0

    graph, choice = pick(opening, [OPENVINO], lambda c, r: passed_psnr(0.0), trial)
    assert graph.engine == "openvino" and choice.spec == OPENVINO and not calls
    assert "the one the settings allow" in choice.reason


def test_a_race_times_a_full_round_and_stops_a_candidate_that_has_lost() -> None:
    ran: list[str] = []
    steps = [lambda name=name: ran.append(name) for name in "abc"]
    race = Race()
    first = race.time(steps)
    assert ran == ["a", "a", "b", "c"] and race.best == first
    ran.clear()
    race.best = 0.0  # a candidate that finished in no time came before
    race.time(steps)
    assert ran == ["a", "a"]
    ran.clear()
    Race(rounds=3).time(steps)
    assert ran == ["a", *"abc" * 3]


def test_the_gates_verdicts_at_their_thresholds() -> None:
    assert passed_psnr(quality.PSNR_DB).passed and not passed_psnr(39.99).passed
    assert passed_psnr(41.0).text == "PSNR 41 dB >= 40 against fp32"
    assert passed_shift(quality.IWAE_NATS).passed and not passed_shift(0.11).passed
    assert passed_shift(0.5).text == "IWAE bound shift 0.5 nats > 0.1 against fp32"


def test_a_graph_chosen_for_before_opens_on_its_choice_with_no_trial(tmp_path: Path) -> None:
    path = _doubling_graph(tmp_path / "again.onnx", TensorProto.FLOAT)
    specs = [ORT, OPENVINO]
    timed: list[str] = []

    def trial(graph: Graph) -> float:
        timed.append(graph.engine)
        return {"onnxruntime": 2.0, "openvino": 1.0}[graph.engine]

    first = Opening(path, "float32", EngineOptions(threads=1))
    assert remembered(first, specs) is None
    first.open_reference(specs)
    graph, choice = pick(first, specs, lambda c, r: passed_psnr(0.0), trial)
    assert timed == ["onnxruntime", "openvino"] and choice.spec == OPENVINO
    again = Opening(path, "float32", EngineOptions(threads=1))
    assert remembered(again, specs) is choice
    graph, same = pick(again, specs, lambda c, r: passed_psnr(0.0), trial)
    assert same is choice and graph.engine == "openvino" and len(timed) == 2
    other, _ = pick(again, [ORT], lambda c, r: passed_psnr(0.0), trial)
    assert other.engine == "onnxruntime"  # other candidates: another choice
