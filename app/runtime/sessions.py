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
    run_options: ort.RunOptions | None = None

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
        outputs = self.session.run(self.output_names, {self.input_name: inputs}, self.run_options)
        return dict(zip(self.output_names, outputs, strict=True))

    def run_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, NDArray[np.float32]]:
        """Runs the graph with every input named."""
        outputs = self.session.run(self.output_names, feeds, self.run_options)
        return dict(zip(self.output_names, outputs, strict=True))


def load_graph(
    path: Path, threads: int | None = None, spinning: bool = True, shrink_arena: bool = False
) -> GraphSession:
    """Loads an ONNX graph on the best available provider with `threads` intra-op threads.

    `spinning=False` makes idle intra-op threads sleep instead of busy-waiting for the next
    call: a server whose event loop shares the cores with them gets that CPU back.
    `shrink_arena=True` gives the CPU memory arena's free regions back after every run
    (`memory.enable_memory_arena_shrinkage`): a kl-small AutoencoderKL's 1024 px decode otherwise
    keeps its 2.2 GB for good. Measured on kl-small at 512 px: as fast as the arena kept (0.78 s),
    where no arena at all took 1.3-1.7 s (every run faulting its buffers in anew).
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=available_providers())
    run_options = None
    if shrink_arena:
        run_options = ort.RunOptions()
        run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return GraphSession(
        session=session,
        input_name=session.get_inputs()[0].name,
        output_names=[o.name for o in session.get_outputs()],
        run_options=run_options,
    )


def cpu_session(path: Path) -> ort.InferenceSession:
    """A graph on the CPU with ONNX Runtime's defaults: the reference a parity check or an
    import's trial run compares against, whatever provider serving would pick."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
