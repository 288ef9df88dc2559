"""Which engine, precision and device may run a graph (`candidates`), and opening a graph on one
of them (`open_graph`). `choice.choose` picks among the candidates by quality gate and trial."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.runtime.cpu import CpuInfo
from app.runtime.graph import RELEASE_ABOVE, Graph


@dataclass(frozen=True)
class EngineSpec:
    """One way to run a graph: `engine` (onnxruntime, openvino), `precision` (fp32, bf16, fp16),
    `device` (cpu, cuda). `note` says why it is a candidate, for the choice's reason (e.g. "the
    CPU has AMX"); it is not part of the spec's identity."""

    engine: str
    precision: str
    device: str = "cpu"
    note: str = field(default="", compare=False)

    @property
    def label(self) -> str:
        """`openvino bf16`, or `onnxruntime fp16 on cuda` off the CPU."""
        where = "" if self.device == "cpu" else f" on {self.device}"
        return f"{self.engine} {self.precision}{where}"

    @property
    def reference(self) -> bool:
        """Whether this is a full-precision (fp32) spec: the reference others are gated against."""
        return self.precision == "fp32"

    def as_json(self) -> dict[str, str]:
        """The spec for `GET /models/{name}` and metric labels."""
        return {"engine": self.engine, "precision": self.precision, "device": self.device}


@dataclass(frozen=True)
class EngineOptions:
    """How graphs are opened, whatever the engine (serving builds it from its settings: the
    runtime reads no settings). `threads`: intra-op threads (all cores when None); `spinning`:
    ONNX Runtime's idle threads busy-wait; `compiled_shapes`: the OpenVINO shape LRU's size;
    `release_above`: a call whose largest input or output has this many elements or more gives
    its working memory back when it ends (OpenVINO; None: never); `shrink_arena`: ONNX Runtime's
    CPU arena gives its free regions back after every run (for graphs whose calls vary widely
    in size, so that a large one's memory comes back)."""

    threads: int | None = None
    spinning: bool = True
    compiled_shapes: int = 4
    release_above: int | None = RELEASE_ABOVE
    shrink_arena: bool = False


def _bf16_note(cpu: CpuInfo) -> str:
    if cpu.native_bf16():
        return f"the CPU has {cpu.bf16_units()[0]}"
    return (
        "bf16 asked for, but the CPU has no native bf16 (AMX, AVX-512 BF16): OpenVINO emulates "
        "it or runs fp32, slower than fp32 would be"
    )


def _fp16_note(cpu: CpuInfo) -> str:
    if cpu.native_fp16():
        return "the CPU has AMX-FP16"
    # Measured here (AVX-512 FP16, no AMX-FP16): kl-small at 256 px, 467 ms of CPU an image
    # in fp16, 374 in fp32, 86 in bf16.
    return "fp16 asked for, but the CPU has no AMX-FP16: slower than fp32, bf16 is the fast one"


def _cpu_specs(engines: list[str], precision: str, cpu: CpuInfo) -> list[EngineSpec]:
    specs: list[EngineSpec] = []
    if precision in ("auto", "fp32"):
        specs += [EngineSpec(engine, "fp32", "cpu") for engine in engines]
    if "openvino" not in engines:
        return specs
    if precision == "bf16" or (precision == "auto" and cpu.native_bf16()):
        specs.append(EngineSpec("openvino", "bf16", "cpu", _bf16_note(cpu)))
    if precision == "fp16" or (precision == "auto" and cpu.native_fp16()):
        specs.append(EngineSpec("openvino", "fp16", "cpu", _fp16_note(cpu)))
    return specs


def candidates(
    engine_setting: str, precision_setting: str, cpu: CpuInfo, gpu_available: bool
) -> list[EngineSpec]:
    """The specs a graph may run on, fp32 references first, then lower precisions.

    - `engine_setting` auto, onnxruntime or openvino (`VAE_ENGINE`); `precision_setting` auto,
      fp32, bf16 or fp16 (`VAE_PRECISION`).
    - auto precision adds bf16 (OpenVINO on the CPU) only where the CPU runs it natively (AMX,
      AVX-512 BF16), fp16 on the CPU only with AMX-FP16, and fp16 (ONNX Runtime's CUDA provider)
      on a GPU.
    - An explicit bf16 on a CPU without native bf16 is allowed (the user asked), its note says it
      is not native and slow (so for fp16 without AMX-FP16); bf16 needs OpenVINO (ONNX Runtime
      has no bf16 CPU kernels for these graphs), fp16 needs a GPU or OpenVINO.
    - With a GPU and an engine setting other than openvino, the candidates are the GPU's only.
    Raises ValueError for a combination no engine runs (onnxruntime with bf16; fp16 on a CPU with
    onnxruntime)."""
    if engine_setting not in ("auto", "onnxruntime", "openvino"):
        raise ValueError(f"unknown engine {engine_setting!r}")
    if precision_setting not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"unknown precision {precision_setting!r}")
    if gpu_available and engine_setting != "openvino" and precision_setting != "bf16":
        specs = []
        if precision_setting in ("auto", "fp32"):
            specs.append(EngineSpec("onnxruntime", "fp32", "cuda"))
        if precision_setting in ("auto", "fp16"):
            specs.append(EngineSpec("onnxruntime", "fp16", "cuda", "a GPU runs fp16 natively"))
        return specs
    engines = ["onnxruntime", "openvino"] if engine_setting == "auto" else [engine_setting]
    specs = _cpu_specs(engines, precision_setting, cpu)
    if not specs:
        raise ValueError(
            f"no engine runs precision {precision_setting} with engine {engine_setting} on the "
            "CPU: bf16 and fp16 run on openvino (VAE_ENGINE=openvino or auto)"
        )
    return specs


Opener = Callable[[Path, EngineSpec, EngineOptions], Graph]


def _open_onnxruntime(path: Path, spec: EngineSpec, options: EngineOptions) -> Graph:
    from app.runtime.sessions import load_graph

    return load_graph(path, options.threads, options.spinning, options.shrink_arena)


def _open_openvino(path: Path, spec: EngineSpec, options: EngineOptions) -> Graph:
    from app.runtime.openvino_graph import OpenVinoGraph

    return OpenVinoGraph(
        path,
        spec.precision,
        options.threads,
        options.compiled_shapes,
        release_above=options.release_above,
    )


def _open_cuda(path: Path, spec: EngineSpec, options: EngineOptions) -> Graph:
    from app.runtime.cuda import open_cuda_graph

    return open_cuda_graph(path, spec, options)


OPENERS: dict[tuple[str, str], Opener] = {
    ("onnxruntime", "cpu"): _open_onnxruntime,
    ("openvino", "cpu"): _open_openvino,
    ("onnxruntime", "cuda"): _open_cuda,
}
"""Who opens a graph for an (engine, device). The CUDA one is app/runtime/cuda.py's
`open_cuda_graph(path, spec, options) -> Graph` (fp32, or fp16 with I/O binding)."""


def open_graph(path: Path, spec: EngineSpec, options: EngineOptions | None = None) -> Graph:
    """The ONNX graph at `path` opened as `spec` says. An fp32 or float16-exported graph on ONNX
    Runtime's CPU provider is the `GraphSession` of `sessions.load_graph`. (Serving wraps a
    float16 graph in its own float32 face.)"""
    opener = OPENERS.get((spec.engine, spec.device))
    if opener is None:
        raise ValueError(f"no engine opens {spec.label}")
    if spec.engine == "onnxruntime" and spec.device == "cpu" and spec.precision == "bf16":
        raise ValueError("onnxruntime runs no bf16 on the CPU: use openvino")
    return opener(path, spec, options or EngineOptions())
