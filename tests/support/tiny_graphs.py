"""Tiny ONNX graphs made in the test (onnx.helper): a two-convolution image graph of any size,
in float32 or float16, for the runtime's engine tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def conv_graph(path: Path, dtype: type[np.floating] = np.float32, seed: int = 0) -> Path:
    """x [N, 4, H, W] -> conv 3x3 (8) -> relu ("features") -> conv 3x3 (3) -> tanh ("image"),
    H and W free. Written to `path` (opset 17), which is returned."""
    rng = np.random.default_rng(seed)
    kind = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    weights = [
        numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(dtype), name)
        for name, shape in (("w1", (8, 4, 3, 3)), ("b1", (8,)), ("w2", (3, 8, 3, 3)), ("b2", (3,)))
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["features"]),
        helper.make_node("Conv", ["features", "w2", "b2"], ["y"], pads=[1, 1, 1, 1]),
        helper.make_node("Tanh", ["y"], ["image"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-conv",
        [helper.make_tensor_value_info("x", kind, ["n", 4, "h", "w"])],
        [
            helper.make_tensor_value_info("image", kind, ["n", 3, "h", "w"]),
            helper.make_tensor_value_info("features", kind, ["n", 8, "h", "w"]),
        ],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
