"""A loaded version's parts: the engine chosen for each graph, and `vae_model_engine_info`, set
while the version runs and gone once it is closed (an unloaded version leaves no series); the
fp32 graph of one chosen lower, opened once by its first calls and closed with the version."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from prometheus_client import REGISTRY

from app.repository.manifest import ImageSpec, Manifest
from app.runtime.choice import EngineChoice
from app.runtime.engines import EngineSpec, open_graph
from app.serving.batcher import BatcherLabels, DirectRunner, Runner
from app.serving.exact import VersionClosed
from app.serving.loaded import ExactRunner, ModelParts
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
    encoder, decoder = runners
    return ModelParts(manifest, tmp_path, graphs["encoder"], graphs["decoder"], encoder, decoder)


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


# ---- exact (fp32) graphs opened on demand ------------------------------------------------------
def _exact(tmp_path: Path, opened: list[DirectRunner]) -> ExactRunner:
    """An exact runner over an identity graph in ONNX Runtime fp32, noting each one it opens."""
    spec = EngineSpec("onnxruntime", "fp32")
    path = _identity(tmp_path / "exact.onnx")

    def open_runner() -> DirectRunner:
        runner = DirectRunner(open_graph(path, spec).run, BatcherLabels("engines", "decoder-fp32"))
        opened.append(runner)
        return runner

    return ExactRunner(spec, open_runner)


async def test_an_exact_graph_opens_once_on_its_first_calls_and_closes_with_the_version(
    tmp_path: Path,
) -> None:
    parts, opened = _parts(tmp_path), list[DirectRunner]()
    parts.exact = {"decoder": _exact(tmp_path, opened)}
    parts.start()
    assert not opened and not parts.busy  # nothing opened at load
    first, second = await asyncio.gather(
        parts.exact_runner("decoder"), parts.exact_runner("decoder")
    )
    assert first is second is opened[0] and len(opened) == 1
    assert first is not parts.decode_runner
    out = await first.submit(np.full((1, 2), 3.0, np.float32), None)
    assert np.array_equal(out["y"], np.full((1, 2), 3.0))
    # the encoder was chosen in fp32: its exact runner is the chosen one
    assert await parts.exact_runner("encoder") is parts.encode_runner
    await parts.close()
    with pytest.raises(VersionClosed):
        await parts.exact.pop("decoder").runner()


async def test_a_version_is_busy_while_its_exact_graph_opens_and_one_closed_meanwhile_never_serves(
    tmp_path: Path,
) -> None:
    gate, opened = threading.Event(), list[DirectRunner]()
    exact = _exact(tmp_path, opened)
    slow_open = exact._open

    def held_open() -> Runner:
        gate.wait(10)
        return slow_open()

    exact._open = held_open
    parts = _parts(tmp_path)
    parts.exact = {"decoder": exact}
    opening = asyncio.ensure_future(parts.exact_runner("decoder"))
    while not parts.busy:  # the request took the lock and waits for the graph
        await asyncio.sleep(0.01)
    await parts.close()
    gate.set()
    with pytest.raises(VersionClosed):
        await opening
    assert len(opened) == 1 and exact.opened is None and not parts.busy
