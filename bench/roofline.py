"""The CPU's roofline for these decoders: each engine's GEMM peak at each precision, and the
floating-point work of one decode, so that an engine's images/s reads as GFLOP/s against its peak.

    .venv/bin/python -m bench.roofline                 # GEMM peaks of ONNX Runtime and OpenVINO
    .venv/bin/python -m bench.roofline --graph D.onnx --size 512   # + one decoder's GFLOP/image

The GEMM peak is a 2048 x 2048 x 2048 MatMul graph run back to back for a few seconds on all the
process's cores (float32 on ONNX Runtime; OpenVINO at f32 and, where the CPU has it, bf16).
The work of a decoder counts multiply-adds of its Conv, MatMul and Gemm nodes (2 FLOP each) at
a given input size, from ONNX shape inference: the convolutions and the attention that are
nearly all of an AutoencoderKL's time.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

GEMM_SIDE = 2048


def _gemm_model(side: int) -> Any:
    from onnx import TensorProto, helper, numpy_helper

    weight = np.random.default_rng(0).standard_normal((side, side), np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["y"])],
        "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [side, side])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [side, side])],
        [numpy_helper.from_array(weight, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _rate(run: Any, flop: float, seconds: float) -> float:
    run()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds or count < 3:
        run()
        count += 1
    return flop * count / (time.perf_counter() - started) / 1e9


def gemm_peaks(threads: int, seconds: float = 3.0, side: int = GEMM_SIDE) -> dict[str, float]:
    """GFLOP/s of one side^3 MatMul on each engine and precision this CPU runs."""
    import onnx
    import onnxruntime as ort
    import openvino as ov

    flop = 2.0 * side**3
    a = np.random.default_rng(1).standard_normal((side, side), np.float32)
    peaks: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gemm.onnx"
        onnx.save(_gemm_model(side), str(path))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        peaks["onnxruntime fp32"] = _rate(lambda: session.run(None, {"a": a}), flop, seconds)
        core = ov.Core()
        hints = {"f32": "fp32"}
        if "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            hints["bf16"] = "bf16"
        for hint, label in hints.items():
            compiled = core.compile_model(
                core.read_model(str(path)),
                "CPU",
                {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads},
            )
            request = compiled.create_infer_request()
            peaks[f"openvino {label}"] = _rate(lambda r=request: r.infer({0: a}), flop, seconds)
    return peaks


def _conv_flop(node: Any, shapes: dict[str, list[int]]) -> float:
    out = shapes.get(node.output[0])
    weight = shapes.get(node.input[1])
    if not out or not weight:
        return 0.0
    # out [N, Cout, H, W], weight [Cout, Cin/group, kH, kW]: one MAC per weight per output cell
    return 2.0 * float(np.prod(out)) * float(np.prod(weight[1:]))


def _matmul_flop(node: Any, shapes: dict[str, list[int]]) -> float:
    a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
    if not a or not out:
        return 0.0
    return 2.0 * float(np.prod(out)) * a[-1]


def decoder_gflop(graph: Path, size: int, downscale: int = 8, channels: int = 4) -> float:
    """GFLOP of one decode of a size x size image by the ONNX decoder at `graph`."""
    import onnx

    model = onnx.load(str(graph))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, channels, size // downscale, size // downscale), strict=True):
        dim.Clear()
        dim.dim_value = value
    inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes: dict[str, list[int]] = {}
    for info in [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]:
        dims = info.type.tensor_type.shape.dim
        shapes[info.name] = [d.dim_value for d in dims]
    for init in inferred.graph.initializer:
        shapes[init.name] = list(init.dims)
    total = 0.0
    for node in inferred.graph.node:
        if node.op_type == "Conv":
            total += _conv_flop(node, shapes)
        elif node.op_type in {"MatMul", "Gemm"}:
            total += _matmul_flop(node, shapes)
    return total / 1e9


def main(argv: list[str] | None = None) -> int:
    """Prints the GEMM peaks (and a decoder's GFLOP/image when given one) as JSON."""
    from bench import machine

    parser = argparse.ArgumentParser(prog="python -m bench.roofline", description=__doc__)
    parser.add_argument("--graph", type=Path, default=None)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"machine": machine.describe()}
    report["gemm_gflops"] = gemm_peaks(machine.cores(), args.seconds)
    if args.graph is not None:
        report["decoder_gflop_per_image"] = decoder_gflop(args.graph, args.size)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
