"""A loaded version's parts: the engine chosen for each graph, and `vae_model_engine_info`, set
while the version runs and gone once it is closed (an unloaded version leaves no series)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from prometheus_client import REGISTRY

from app.repository.manifest import ImageSpec, Manifest
from app.runtime.choice import EngineChoice
from app.runtime.engines import EngineSpec, open_graph
from app.serving.batcher import BatcherLabels, DirectRunner
from app.serving.loaded import ModelParts
from app.serving.packing import PackedGraph

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _identity(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "identity",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def _parts(tmp_path: Path) -> ModelParts:
    manifest = Manifest(
        name="engines", version=3, latent_dim=2, likelihood="gaussian",
        image=ImageSpec(height=1, width=2, channels=1), created_at="2026-12-06T00:00:00Z",
    )  # fmt: skip
    graphs = {}
    for which, spec in (("encoder", EngineSpec("onnxruntime", "fp32")),
                        ("decoder", EngineSpec("openvino", "bf16"))):  # fmt: skip
        graph = open_graph(_identity(tmp_path / f"{which}.onnx"), spec)
        choice = EngineChoice(spec, f"{spec.label}: because")
        graphs[which] = PackedGraph(graph, (2,), False, choice)
    runners = [DirectRunner(graphs[which].run, BatcherLabels("engines", which)) for which in graphs]
    return ModelParts(manifest, tmp_path, graphs["encoder"], graphs["decoder"], *runners)


def _series(graph: str, engine: str, precision: str) -> float | None:
    labels = {"model": "engines", "version": "3", "graph": graph, "engine": engine}
    return REGISTRY.get_sample_value("vae_model_engine_info", {**labels, "precision": precision})


async def test_the_engine_metric_lives_as_long_as_the_version(tmp_path: Path) -> None:
    parts = _parts(tmp_path)
    assert {w: c.spec.label for w, c in parts.engines.items()} == {
        "encoder": "onnxruntime fp32",
        "decoder": "openvino bf16",
    }
    assert parts.provider == "openvino:CPU"  # what runs the decoder
    assert _series("decoder", "openvino", "bf16") is None
    parts.start()
    assert _series("encoder", "onnxruntime", "fp32") == 1.0
    assert _series("decoder", "openvino", "bf16") == 1.0
    out = await parts.decode_runner.submit(np.ones((1, 2), np.float32), None)
    assert np.array_equal(out["y"], np.ones((1, 2)))
    await parts.close()
    assert _series("encoder", "onnxruntime", "fp32") is None
    assert _series("decoder", "openvino", "bf16") is None
    await parts.close()  # closing twice is harmless
