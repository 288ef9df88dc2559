"""app/runtime/engines.py: the candidates each setting and CPU allow, and opening a graph on
each engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.runtime.cpu import CpuInfo
from app.runtime.engines import EngineOptions, EngineSpec, candidates, open_graph
from app.runtime.graph import Graph
from app.runtime.openvino_graph import OpenVinoGraph
from app.runtime.sessions import GraphSession
from tests.support.tiny_graphs import conv_graph

AMX = CpuInfo(
    "Xeon with AMX",
    frozenset({"avx512f", "amx_bf16", "avx512_bf16"}),
    2,
    frozenset({"FP32", "BF16"}),
)
PLAIN = CpuInfo("Xeon without bf16", frozenset({"avx2", "avx512f"}), 2, frozenset({"FP32"}))
ORT32, OV32, OV16 = (
    EngineSpec("onnxruntime", "fp32"),
    EngineSpec("openvino", "fp32"),
    EngineSpec("openvino", "bf16"),
)


def labels(specs: list[EngineSpec]) -> list[str]:
    return [spec.label for spec in specs]


def test_auto_on_an_amx_cpu_tries_both_fp32_engines_then_openvino_bf16() -> None:
    specs = candidates("auto", "auto", AMX, gpu_available=False)
    assert specs == [ORT32, OV32, OV16]
    assert specs[-1].note == "the CPU has AMX"


def test_auto_without_native_bf16_stays_at_fp32() -> None:
    assert candidates("auto", "auto", PLAIN, False) == [ORT32, OV32]
    assert candidates("openvino", "auto", PLAIN, False) == [OV32]


def test_auto_on_a_cpu_with_amx_fp16_tries_fp16_after_bf16() -> None:
    flags = AMX.flags | {"amx_fp16"}
    granite = CpuInfo("Xeon with AMX-FP16", flags, 2, frozenset({"FP32", "BF16", "FP16"}))
    specs = candidates("auto", "auto", granite, False)
    assert labels(specs) == ["onnxruntime fp32", "openvino fp32", "openvino bf16", "openvino fp16"]
    assert specs[-1].note == "the CPU has AMX-FP16"


def test_fp16_asked_for_on_a_cpu_without_amx_fp16_is_said_to_be_slow() -> None:
    (spec,) = candidates("auto", "fp16", AMX, False)
    assert spec == EngineSpec("openvino", "fp16") and "no AMX-FP16" in spec.note


def test_named_engines_and_precisions_narrow_the_list() -> None:
    assert candidates("onnxruntime", "auto", AMX, False) == [ORT32]
    assert candidates("openvino", "auto", AMX, False) == [OV32, OV16]
    assert candidates("auto", "fp32", AMX, False) == [ORT32, OV32]
    assert candidates("openvino", "bf16", AMX, False) == [OV16]
    assert candidates("auto", "bf16", AMX, False) == [OV16]


def test_bf16_asked_for_without_native_bf16_is_allowed_and_said_to_be_slow() -> None:
    (spec,) = candidates("openvino", "bf16", PLAIN, False)
    assert spec == OV16 and "no native bf16" in spec.note and "slower" in spec.note


def test_a_combination_no_engine_runs_is_refused_with_what_to_set() -> None:
    with pytest.raises(ValueError, match="openvino"):
        candidates("onnxruntime", "bf16", AMX, False)
    with pytest.raises(ValueError, match="unknown engine"):
        candidates("tensorrt", "auto", AMX, False)
    with pytest.raises(ValueError, match="unknown precision"):
        candidates("auto", "int8", AMX, False)


def test_a_gpu_is_tried_at_fp32_then_fp16_on_cuda() -> None:
    specs = candidates("auto", "auto", AMX, gpu_available=True)
    assert labels(specs) == ["onnxruntime fp32 on cuda", "onnxruntime fp16 on cuda"]
    assert candidates("auto", "fp16", AMX, True) == [EngineSpec("onnxruntime", "fp16", "cuda")]
    # OpenVINO named: the CPU's candidates, even with a GPU.
    assert candidates("openvino", "auto", AMX, True) == [OV32, OV16]


def test_a_spec_is_the_same_whatever_its_note() -> None:
    assert EngineSpec("openvino", "bf16", "cpu", "a note") == OV16
    assert OV16.as_json() == {"engine": "openvino", "precision": "bf16", "device": "cpu"}


def test_open_graph_opens_each_engine_as_a_graph(tmp_path: Path) -> None:
    path = conv_graph(tmp_path / "conv.onnx")
    options = EngineOptions(threads=1, compiled_shapes=3)
    ort = open_graph(path, ORT32, options)
    ov = open_graph(path, OV16, options)
    assert isinstance(ort, GraphSession) and isinstance(ov, OpenVinoGraph)
    assert isinstance(ort, Graph) and isinstance(ov, Graph)
    assert (ort.engine, ort.precision, ort.device) == ("onnxruntime", "fp32", "cpu")
    assert ov.engine == "openvino" and ov.compiled_shapes == 3
    inputs = np.zeros((1, 4, 8, 8), np.float32)
    assert ort.run(inputs)["image"].shape == ov.run(inputs)["image"].shape == (1, 3, 8, 8)


def test_a_float16_graph_on_onnxruntime_says_fp16(tmp_path: Path) -> None:
    graph = open_graph(conv_graph(tmp_path / "half.onnx", np.float16), ORT32)
    assert graph.precision == "fp16"


def test_open_graph_refuses_what_no_engine_opens(tmp_path: Path) -> None:
    path = conv_graph(tmp_path / "conv.onnx")
    with pytest.raises(ValueError, match="no bf16"):
        open_graph(path, EngineSpec("onnxruntime", "bf16"))
    with pytest.raises(ValueError, match="no engine opens openvino fp32 on cuda"):
        open_graph(path, EngineSpec("openvino", "fp32", "cuda"))
