"""What every engine's loaded graph offers the rest of the service: `Graph`, the protocol that
ONNX Runtime's `GraphSession`, OpenVINO's `OpenVinoGraph` (and serving's float16 `CastingSession`)
satisfy. Serving, evaluation and the batcher hold a `Graph` and never ask which engine runs it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from app.arrays import FloatArray

ENGINES = ("onnxruntime", "openvino")
"""The engines `engine` names (a CUDA graph is `onnxruntime` on `device` cuda)."""
PRECISIONS = ("fp32", "bf16", "fp16")
"""The precisions `precision` names: the arithmetic the engine runs the graph's heavy ops in."""

RELEASE_ABOVE = 3 * 1024 * 1024
"""A call whose largest input or output has this many elements or more (a 1024 px RGB image,
to decode or to encode) gives its compiled shape's working memory back when it ends. OpenVINO
on kl-small (bench.spatial) at bf16 holds 563 MB after a 1024 px decode, 148 MB once released;
1.8 GB after a 2048 px one (fp32: 3.4 GB), 150 MB released. Smaller calls keep theirs:
allocating again each call made a 512 px encode 17% slower (263 to 307 ms)."""


@runtime_checkable
class Graph(Protocol):
    """One loaded graph on one engine, safe to call from several threads at once.

    - `run(inputs)`: feeds one float32 batch to the first input, returns every output by name as
      float32 arrays the caller owns (never views of the engine's buffers).
    - `run_feeds(feeds)`: the same with every input named (a conditional model's label `y`).
    - `input_name`, `input_names`, `output_names`: the graph's names, as the ONNX file has them.
    - `input_width`: the fixed second dimension of the first input when the graph declares one.
    - `provider`: what runs it: `CPUExecutionProvider`, `CUDAExecutionProvider`, `openvino:CPU`.
    - `device`: `cpu` or `cuda` (whether batches pay is a property of the device, not the engine).
    - `engine`: `onnxruntime` or `openvino`.
    - `precision`: `fp32`, `bf16` or `fp16`: the arithmetic actually compiled, read back from
      the engine (a float16 ONNX graph on ONNX Runtime is `fp16`).
    """

    @property
    def input_name(self) -> str: ...

    @property
    def input_names(self) -> list[str]: ...

    @property
    def output_names(self) -> list[str]: ...

    @property
    def input_width(self) -> int | None: ...

    @property
    def provider(self) -> str: ...

    @property
    def device(self) -> str: ...

    @property
    def engine(self) -> str: ...

    @property
    def precision(self) -> str: ...

    def run(self, inputs: FloatArray) -> dict[str, FloatArray]: ...

    def run_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, FloatArray]: ...
