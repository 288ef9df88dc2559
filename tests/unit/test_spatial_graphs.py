"""A spatial version's exact graphs: which fp32 spec a graph chosen below fp32 gets (the first
fp32 one the engine setting allows, the gates' reference), and that one is opened, on the first
call only, as the graph the chosen one stands for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from app.config import Settings
from app.repository.manifest import ImageSpec, Manifest
from app.runtime.choice import EngineChoice, Trial
from app.runtime.engines import EngineSpec, open_graph
from app.serving.batcher import BatcherLabels, DirectRunner, Runner
from app.serving.packing import PackedGraph
from app.serving.spatial_graphs import exact_runners, exact_spec

pytestmark = pytest.mark.anyio

ORT, OV = EngineSpec("onnxruntime", "fp32"), EngineSpec("openvino", "fp32")
BF16 = EngineSpec("openvino", "bf16")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def settings(**values: Any) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def test_a_graph_chosen_in_fp32_needs_no_exact_twin() -> None:
    assert exact_spec(EngineChoice(OV, "fp32"), settings()) is None
    assert exact_spec(None, settings()) is None


def test_the_exact_twin_is_the_gates_reference_the_engine_setting_allows() -> None:
    trials = (Trial(ORT, 0.7), Trial(OV, 0.5), Trial(BF16, 0.2))
    assert exact_spec(EngineChoice(BF16, "bf16", trials), settings()) == ORT
    only_bf16 = EngineChoice(BF16, "the one the settings allow", (Trial(BF16),))
    assert exact_spec(only_bf16, settings(precision="bf16")) == ORT
    assert exact_spec(only_bf16, settings(precision="bf16", engine="openvino")) == OV


def _doubling(path: Path) -> Path:
    """A graph y = 2x over [N, 2]."""
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
        [two],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


async def test_only_graphs_chosen_below_fp32_get_a_twin_opened_on_the_first_call(
    tmp_path: Path,
) -> None:
    manifest = Manifest(
        name="twin", version=1, latent_dim=2, likelihood="gaussian",
        image=ImageSpec(height=1, width=2, channels=1), created_at="2026-12-06T00:00:00Z",
    )  # fmt: skip
    chosen = {}
    for which, spec in (("encoder", ORT), ("decoder", BF16)):
        graph = open_graph(_doubling(tmp_path / f"{which}.onnx"), ORT)
        trials = (Trial(ORT, 0.5), Trial(spec, 0.1))
        chosen[which] = PackedGraph(graph, (2,), False, EngineChoice(spec, "chosen", trials))
    made: list[tuple[PackedGraph, str]] = []

    def make(graph: PackedGraph, which: str) -> Runner:
        made.append((graph, which))
        return DirectRunner(graph.run, BatcherLabels("twin", which + "-fp32"))

    twins = exact_runners(tmp_path, manifest, settings(), chosen, make)
    assert list(twins) == ["decoder"] and twins["decoder"].spec == ORT and not made
    runner = await twins["decoder"].runner()
    twin, which = made[0]
    assert which == "decoder" and twin.graph is not chosen["decoder"].graph
    assert twin.choice is not None and twin.choice.spec == ORT and twin.row_shape == (2,)
    out = await runner.submit(np.ones((1, 2), np.float32), None)
    assert np.array_equal(out["y"], np.full((1, 2), 2.0))
    await twins["decoder"].stop()
