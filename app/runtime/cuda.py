"""ONNX Runtime on an NVIDIA GPU: the CUDA execution provider with its options, float16 graphs
made at load, and I/O binding, in `IoBoundGraph` (a `Graph`, app/runtime/graph.py).

Written against ONNX Runtime's documentation. The provider options are those of "CUDA Execution
Provider" (onnxruntime.ai/docs/execution-providers/CUDA-ExecutionProvider.html: `device_id`,
`arena_extend_strategy` kNextPowerOfTwo | kSameAsRequested, `cudnn_conv_algo_search` EXHAUSTIVE
| HEURISTIC | DEFAULT, `do_copy_in_default_stream`, `cudnn_conv_use_max_workspace`,
`gpu_mem_limit`), passed as the `(name, options)` pair of `providers=` its Python sample shows.
Float16: "Create Float16 and Mixed Precision Models" (docs/performance/model-optimizations/
float16.html) converts with `convert_float_to_float16(model, keep_io_types=...)`; we use the copy
of that function ONNX Runtime ships (`onnxruntime.transformers.float16`, same arguments), with
float32 inputs and outputs kept so callers never see half floats. I/O binding: "I/O Binding"
(docs/performance/tune-performance/iobinding.html) and the Python API summary: `io_binding()`,
`bind_cpu_input`, `bind_output(name, device_type, device_id)`, `run_with_iobinding`,
`copy_outputs_to_cpu`. `onnxruntime.preload_dlls` ("Preload DLLs", the CUDA page) loads the
CUDA and cuDNN libraries of the nvidia-* wheels before the first CUDA session. Arena shrinkage
is the run option `memory.enable_memory_arena_shrinkage` ("gpu:0", "cpu:0") of
onnxruntime_run_options_config_keys.h.

The same code runs on a machine with no GPU with device `cpu` (the CPU provider, outputs bound
to the CPU): that is how the tests exercise the binding and the float16 path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import onnxruntime as ort

from app.arrays import FloatArray

log = logging.getLogger(__name__)

CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
Device = Literal["cuda", "cpu"]
ArenaStrategy = Literal["kNextPowerOfTwo", "kSameAsRequested"]
ConvSearch = Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"]
ARENA_SHRINKAGE = "memory.enable_memory_arena_shrinkage"


class Spec(Protocol):
    """What `open_cuda_graph` reads of an `engines.EngineSpec` (engines imports this module)."""

    @property
    def precision(self) -> str: ...


class Opening(Protocol):
    """What `open_cuda_graph` reads of an `engines.EngineOptions`."""

    @property
    def threads(self) -> int | None: ...

    @property
    def spinning(self) -> bool: ...


class CudaUnavailable(RuntimeError):
    """A CUDA graph was asked of an ONNX Runtime without the CUDA execution provider, or of a
    machine it does not start on (no GPU, no driver, missing CUDA or cuDNN libraries)."""


def cuda_in_build() -> bool:
    """Whether this ONNX Runtime build has the CUDA execution provider (onnxruntime-gpu)."""
    return CUDA_PROVIDER in ort.get_available_providers()


@lru_cache(maxsize=8)
def cuda_available(device_id: int = 0) -> bool:
    """Whether ONNX Runtime runs graphs on CUDA device `device_id` here: the provider is in the
    build and a session on it starts (onnxruntime-gpu lists the provider on machines with no
    driver or no GPU too, then falls back to the CPU). Tried once, on a one-node graph."""
    if not cuda_in_build():
        return False
    preload_cuda_libraries()
    probe = providers_for("cuda", CudaOptions(device_id=device_id))
    return starts_on(probe, CUDA_PROVIDER)


@lru_cache(maxsize=1)
def preload_cuda_libraries() -> None:
    """Loads the CUDA and cuDNN libraries of the nvidia-* wheels `onnxruntime-gpu[cuda,cudnn]`
    installs (the GPU image's way), which the dynamic loader does not search: without this the
    CUDA provider fails to load and sessions fall back to the CPU. `onnxruntime.preload_dlls`
    ("Preload DLLs" in the CUDA provider's docs, ONNX Runtime 1.21 on); a no-op before it."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as error:  # the system's own libraries may still serve
        log.warning("onnxruntime.preload_dlls failed: %s", error)


def starts_on(providers: list[str | tuple[str, dict[str, str]]], wanted: str) -> bool:
    """Whether a session asked for `providers` gets `wanted` as its first provider."""
    try:
        session = ort.InferenceSession(_identity_model(), providers=providers)
    except Exception as error:  # any failure to start means no
        log.warning("%s did not start: %s", wanted, error)
        return False
    return bool(session.get_providers()[0] == wanted)


def _identity_model() -> bytes:
    """A one-node float32 graph, to see whether a provider starts."""
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    result = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "probe", [value], [result]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


@dataclass(frozen=True)
class CudaOptions:
    """The CUDA execution provider's options (their names are ONNX Runtime's).

    `arena_extend_strategy` kSameAsRequested rather than the default kNextPowerOfTwo: images
    of many sizes pass through one session, and rounding each growth up to a power of two
    holds up to twice the memory a large decode needs. `cudnn_conv_algo_search` EXHAUSTIVE is
    ONNX Runtime's default: the fastest kernels, benchmarked once per input shape (a first
    request at a new size pays it; HEURISTIC skips it). `cudnn_conv_use_max_workspace` on:
    "CUDA performance" (docs/performance/tune-performance/cuda-performance.html) finds it
    important for fp16 graphs, where it lets cuDNN pick tensor-core algorithms (at a higher
    peak memory). `gpu_mem_limit` None: no limit.
    """

    device_id: int = 0
    arena_extend_strategy: ArenaStrategy = "kSameAsRequested"
    cudnn_conv_algo_search: ConvSearch = "EXHAUSTIVE"
    do_copy_in_default_stream: bool = True
    cudnn_conv_use_max_workspace: bool = True
    gpu_mem_limit: int | None = None

    def provider_options(self) -> dict[str, str]:
        """The options as ONNX Runtime takes (and `get_provider_options` returns) them: strings."""
        options = {
            "device_id": str(self.device_id),
            "arena_extend_strategy": self.arena_extend_strategy,
            "cudnn_conv_algo_search": self.cudnn_conv_algo_search,
            "do_copy_in_default_stream": "1" if self.do_copy_in_default_stream else "0",
            "cudnn_conv_use_max_workspace": "1" if self.cudnn_conv_use_max_workspace else "0",
        }
        if self.gpu_mem_limit is not None:
            options["gpu_mem_limit"] = str(self.gpu_mem_limit)
        return options


def providers_for(device: Device, options: CudaOptions) -> list[str | tuple[str, dict[str, str]]]:
    """The `providers=` list of a session on `device`: CUDA with its options, then the CPU
    for the operators CUDA has no kernel for; or the CPU alone."""
    if device == "cuda":
        return [(CUDA_PROVIDER, options.provider_options()), CPU_PROVIDER]
    return [CPU_PROVIDER]


def float16_model(path: Path) -> bytes:
    """The graph at `path` with its weights and arithmetic in float16, its inputs and outputs
    still float32 (Cast nodes at the edges), serialized for `InferenceSession`."""
    import onnx  # only a float16 load needs it: the `gpu` extra, in the GPU image
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    return bytes(model.SerializeToString())


def session_options(threads: int | None, spinning: bool) -> ort.SessionOptions:
    """Sequential execution, every graph optimization, `threads` intra-op threads."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


@dataclass
class IoBoundGraph:
    """A graph run through I/O binding: inputs copied from host memory as part of the run,
    outputs allocated on the session's device and copied back once, as float32 arrays the
    caller owns. A new binding each call, so threads may share one graph. A graph exported in
    float16 gets a float32 face: float32 feeds are cast to the half inputs it declares.

    `shrink_above` (input elements): a run with a larger input shrinks the device's memory
    arena afterwards, handing the memory only that size needed back; None never shrinks."""

    session: ort.InferenceSession
    precision: str
    device_id: int = 0
    shrink_above: int | None = None
    input_name: str = field(init=False)
    output_names: list[str] = field(init=False)
    half_inputs: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.half_inputs = frozenset(i.name for i in inputs if i.type == "tensor(float16)")
        if self.input_name in self.half_inputs:
            self.precision = "fp16"

    @property
    def provider(self) -> str:
        """The first provider the session actually got."""
        return str(self.session.get_providers()[0])

    @property
    def device(self) -> str:
        """`cuda` when the CUDA provider runs the graph, else `cpu` (outputs are bound there)."""
        return "cuda" if self.provider == CUDA_PROVIDER else "cpu"

    @property
    def engine(self) -> str:
        """Always `onnxruntime`."""
        return "onnxruntime"

    @property
    def input_names(self) -> list[str]:
        """Every input the graph takes."""
        return [i.name for i in self.session.get_inputs()]

    @property
    def input_width(self) -> int | None:
        """The fixed second dimension of the first input, when the graph declares one."""
        shape = self.session.get_inputs()[0].shape
        return shape[1] if len(shape) == 2 and isinstance(shape[1], int) else None

    def run_options(self, elements: int) -> ort.RunOptions | None:
        """Arena shrinkage for a run past `shrink_above` input elements, else nothing."""
        if self.shrink_above is None or elements <= self.shrink_above:
            return None
        options = ort.RunOptions()
        arena = f"gpu:{self.device_id}" if self.device == "cuda" else "cpu:0"
        options.add_run_config_entry(ARENA_SHRINKAGE, arena)
        return options

    def run(self, inputs: FloatArray) -> dict[str, FloatArray]:
        """Runs one float32 batch fed to the first input."""
        return self.run_feeds({self.input_name: inputs})

    def run_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, FloatArray]:
        """Runs the graph with every input named; every output by name, float32."""
        binding = self.session.io_binding()
        held = {
            name: np.ascontiguousarray(value, np.float16 if name in self.half_inputs else None)
            for name, value in feeds.items()
        }
        for name, value in held.items():
            binding.bind_cpu_input(name, value)
        device_type = self.device
        device_id = self.device_id if device_type == "cuda" else 0
        for name in self.output_names:
            binding.bind_output(name, device_type, device_id)
        elements = max((value.size for value in held.values()), default=0)
        self.session.run_with_iobinding(binding, self.run_options(elements))
        outputs = binding.copy_outputs_to_cpu()
        return {
            name: np.asarray(value, np.float32)
            for name, value in zip(self.output_names, outputs, strict=True)
        }


def load_bound_graph(
    path: Path,
    precision: str = "fp32",
    device: Device = "cuda",
    options: CudaOptions | None = None,
    threads: int | None = None,
    spinning: bool = True,
) -> IoBoundGraph:
    """The graph at `path` on `device` at `precision` (fp32, or fp16 converted at load), run
    through I/O binding. Device cuda needs onnxruntime-gpu and a GPU it starts on
    (CudaUnavailable otherwise); should CUDA still fail, ONNX Runtime runs the graph on the CPU
    and `device` says so."""
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"precision {precision!r} on ONNX Runtime's CUDA path: fp32 or fp16")
    options = options or CudaOptions()
    if device == "cuda" and not cuda_in_build():
        raise CudaUnavailable(
            f"this ONNX Runtime ({ort.__version__}) has no {CUDA_PROVIDER}: install "
            f"onnxruntime-gpu in place of onnxruntime (providers: {ort.get_available_providers()})"
        )
    if device == "cuda" and not cuda_available(options.device_id):
        raise CudaUnavailable(
            f"{CUDA_PROVIDER} did not start on device {options.device_id}: no GPU, no driver, "
            "or the CUDA and cuDNN libraries onnxruntime-gpu needs are missing (its log says)"
        )
    model: str | bytes = float16_model(path) if precision == "fp16" else str(path)
    session = ort.InferenceSession(
        model, session_options(threads, spinning), providers=providers_for(device, options)
    )
    graph = IoBoundGraph(session, precision, options.device_id)
    if device == "cuda" and graph.device != "cuda":
        log.warning("%s: CUDA did not start, ONNX Runtime runs it on %s", path, graph.provider)
    return graph


def open_cuda_graph(path: Path, spec: Spec, options: Opening) -> IoBoundGraph:
    """`engines.open_graph`'s opener for ONNX Runtime on cuda: `spec.precision` fp32 or fp16,
    the provider options of `CudaOptions()` (device 0), `options`' threads and spinning."""
    return load_bound_graph(
        path, spec.precision, "cuda", CudaOptions(), options.threads, options.spinning
    )
