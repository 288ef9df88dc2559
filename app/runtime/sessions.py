"""ONNX Runtime sessions: provider choice (CUDA when present, else CPU), threads and warm-up."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray

PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def default_threads() -> int:
    """Intra-op threads when none are configured: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def available_providers() -> list[str]:
    """The execution providers this ONNX Runtime build has, in order of preference."""
    present = set(ort.get_available_providers())
    return [p for p in PREFERRED_PROVIDERS if p in present]


@dataclass
class GraphSession:
    """One loaded graph on ONNX Runtime: its session, the provider actually running it, its input
    and outputs. A `Graph` (app/runtime/graph.py)."""

    session: ort.InferenceSession
    input_name: str
    output_names: list[str]

    @property
    def provider(self) -> str:
        """The first provider the session actually got (CUDA falls back to CPU silently)."""
        return str(self.session.get_providers()[0])

    @property
    def device(self) -> str:
        """`cuda` when the CUDA provider runs the graph, else `cpu`."""
        return "cuda" if self.provider == "CUDAExecutionProvider" else "cpu"

    @property
    def engine(self) -> str:
        """Always `onnxruntime` (the `Graph` protocol's engine name)."""
        return "onnxruntime"

    @property
    def precision(self) -> str:
        """`fp16` for a graph whose first input is float16 (exported in half), else `fp32`."""
        return "fp16" if self.session.get_inputs()[0].type == "tensor(float16)" else "fp32"

    @property
    def input_names(self) -> list[str]:
        """Every input the graph takes (a conditional model's second one is the label `y`)."""
        return [i.name for i in self.session.get_inputs()]

    @property
    def input_width(self) -> int | None:
        """The fixed second dimension of the first input, when the graph declares one."""
        shape = self.session.get_inputs()[0].shape
        return shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None

    def run(self, inputs: NDArray[np.float32]) -> dict[str, NDArray[np.float32]]:
        """Runs the graph on one batch and names its outputs."""
        outputs = self.session.run(self.output_names, {self.input_name: inputs})
        return dict(zip(self.output_names, outputs, strict=True))

    def run_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, NDArray[np.float32]]:
        """Runs the graph with every input named."""
        outputs = self.session.run(self.output_names, feeds)
        return dict(zip(self.output_names, outputs, strict=True))


def load_graph(
    path: Path, threads: int | None = None, spinning: bool = True, arena: bool = True
) -> GraphSession:
    """Loads an ONNX graph on the best available provider with `threads` intra-op threads.

    `spinning=False` makes idle intra-op threads sleep instead of busy-waiting for the next
    call: a server whose event loop shares the cores with them gets that CPU back.
    `arena=False` turns ONNX Runtime's CPU memory arena off: a large call's buffers are freed
    when it ends instead of kept for the next (a 1024 px AutoencoderKL decode: 2.1 GB kept with
    the arena, none without it once glibc trims; shrinking the arena after each run kept 1 GB).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.enable_cpu_mem_arena = arena
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=available_providers())
    return GraphSession(
        session=session,
        input_name=session.get_inputs()[0].name,
        output_names=[o.name for o in session.get_outputs()],
    )


def cpu_session(path: Path) -> ort.InferenceSession:
    """A graph on the CPU with ONNX Runtime's defaults: the reference a parity check or an
    import's trial run compares against, whatever provider serving would pick."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
