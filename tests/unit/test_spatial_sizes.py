"""The engine a spatial request's peak is estimated for (`engine_of`: the graph that runs it, or
its fp32 graph for exact results) and what it changes in the plan: a 2048 px AutoencoderKL decode
fits a 3 GB budget in one piece on OpenVINO bf16, but is tiled on OpenVINO fp32 and ONNX Runtime."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

import pytest

from app.runtime.engines import EngineSpec
from app.serving.adapters.spatial_sizes import (
    OverMemoryBudget,
    engine_of,
    largest_side,
    plan_run,
)
from app.serving.loaded import ModelParts
from app.serving.memory import ONNX_RUNTIME, Engine
from app.serving.tiling import TilePlan
from tests.unit.test_tiling import KL, manifest, settings

KL_SMALL = manifest(
    "AutoencoderKL", {**KL, "block_out_channels": [32, 64, 128, 128], "sample_size": 512}, 8
)
OV_BF16, OV_FP32 = Engine("openvino", "bf16"), Engine("openvino", "fp32")


def test_a_2048_decode_fits_in_one_piece_on_openvino_bf16_only() -> None:
    budget, latents = settings(memory_budget_mb=3072), (1, 4, 256, 256)
    assert plan_run(KL_SMALL, budget, latents, False, OV_BF16).tiles is None
    assert isinstance(plan_run(KL_SMALL, budget, latents, False, OV_FP32).tiles, TilePlan)
    assert isinstance(plan_run(KL_SMALL, budget, latents, False).tiles, TilePlan)
    never = settings(memory_budget_mb=3072, tiling="never")
    with pytest.raises(OverMemoryBudget, match="largest that fits"):
        plan_run(KL_SMALL, never, latents, False, OV_FP32)
    on_onnx_runtime = largest_side(KL_SMALL, never, 1, False)
    on_openvino = largest_side(KL_SMALL, never, 1, False, OV_FP32)
    assert on_onnx_runtime is not None and on_openvino is not None
    assert on_onnx_runtime < 1536 < on_openvino < 2048


class Graph:
    def __init__(self, engine: str, precision: str) -> None:
        self.engine, self.precision = engine, precision


def parts(exact: dict[str, Any]) -> ModelParts:
    chosen = SimpleNamespace(graph=Graph("openvino", "bf16"))
    fp32 = SimpleNamespace(graph=Graph("onnxruntime", "fp32"))
    return cast(ModelParts, SimpleNamespace(encoder=fp32, decoder=chosen, exact=exact))


def test_the_engine_is_the_graphs_or_its_exact_graphs() -> None:
    lazy = SimpleNamespace(spec=EngineSpec("openvino", "fp32"))
    model = parts({"decoder": lazy})
    assert engine_of(model, "decoder") == OV_BF16
    assert engine_of(model, "decoder", exact=True) == OV_FP32
    assert engine_of(model, "encoder", exact=True) == ONNX_RUNTIME
    assert engine_of(parts({}), "decoder", exact=True) == OV_BF16
