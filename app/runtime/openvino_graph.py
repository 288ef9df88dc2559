"""OpenVINO graphs: the same ONNX file ONNX Runtime reads, compiled for the CPU at fp32 or bf16
(AMX), one compiled model per static input shape, the last `compiled_shapes` of them kept."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import openvino as ov

from app.arrays import FloatArray
from app.runtime.graph import RELEASE_ABOVE

OV_PRECISIONS = {"fp32": ov.Type.f32, "bf16": ov.Type.bf16, "fp16": ov.Type.f16}
"""The `INFERENCE_PRECISION_HINT` of each precision name."""
PRECISION_NAMES = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
ShapeKey = tuple[tuple[str, tuple[int, ...]], ...]
logger = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def core() -> ov.Core:
    """The process's one OpenVINO Core (it holds the plugins; compiling is thread-safe)."""
    return ov.Core()


def compile_config(precision: str, threads: int | None, hint: str = "LATENCY") -> dict[str, Any]:
    """The CPU plugin's settings for one graph: its precision, threads and performance hint
    (LATENCY: one stream, every thread on one call, as a server answering one image at a time
    wants). Threads are not pinned to cores: the plugin's threads share the cores with the event
    loop, the other graphs and ONNX Runtime, and a pinned thread cannot move off a busy core
    (kl-small at 512 px, bf16, two cores shared with other work: median 904 ms pinned, 724 ms
    not; at 256 px 175 and 137 ms)."""
    config: dict[str, Any] = {
        "INFERENCE_PRECISION_HINT": OV_PRECISIONS[precision],
        "PERFORMANCE_HINT": hint,
        "ENABLE_CPU_PINNING": False,
    }
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    return config


class _Compiled:
    """A compiled model, its idle infer requests and how many calls run on it. Creating an infer
    request a call costs ~0.2 ms, and a request serves one call at a time, so concurrent calls
    each take their own. The compiled model keeps its intermediate buffers between calls (a 2048
    px AutoencoderKL decode: GBs) until `release` hands them back, which the CPU plugin allows
    only while no call runs: the count, under the lock, makes sure of that."""

    def __init__(self, model: ov.CompiledModel) -> None:
        self.model = model
        self._idle: list[ov.InferRequest] = []
        self._running = 0
        self._lock = threading.Lock()

    def take_request(self) -> ov.InferRequest:
        with self._lock:
            self._running += 1
            if self._idle:
                return self._idle.pop()
        return self.model.create_infer_request()

    def give_back(self, request: ov.InferRequest, release: bool) -> None:
        with self._lock:
            self._idle.append(request)
            self._running -= 1
            if release and not self._running:
                self._release()

    def release(self) -> bool:
        """Gives the intermediate buffers back unless a call runs (then False)."""
        with self._lock:
            if self._running:
                return False
            self._release()
            return True

    def _release(self) -> None:
        try:
            self.model.release_memory()
        except RuntimeError as error:  # a plugin that cannot: the memory stays, serving goes on
            logger.warning("OpenVINO kept a compiled model's memory: %s", error)


class OpenVinoGraph:
    """One ONNX graph on OpenVINO's CPU plugin, a `Graph` (app/runtime/graph.py).

    Each distinct set of input shapes is compiled once, static, and kept in an LRU of
    `compiled_shapes` entries: the least recently used compiled model is dropped, and its
    memory with it. Static shapes run 2-10% faster than one dynamic compile (CPU time of one
    image, bf16: kl-small 512 px 369 vs 405 ms, SD-size 256 px 720 vs 801, TAESD 512 px 139 vs
    142) and compile in ~0.2 s CPU at any size, but each holds its own packed weights (an
    SD-size decoder of 188 MB: 112 MB a shape at bf16, 200 at fp32, beside the 203 MB model
    read once). A lock guards the LRU (the batcher calls graphs from worker threads);
    inference runs outside it, on an infer request of its own, so calls run at once. Inputs are
    cast to the graph's input type (a float16 graph takes float32 rows); outputs come back as
    float32 copies. A call whose largest input or output has `release_above` elements or more
    (None: never) hands its compiled shape's working memory back when it ends.

    The CPU plugin fuses attention: a 2048 px decode of kl-small peaks at 1.8 GB in bf16 (3.4
    GB fp32) where ONNX Runtime's score matrix alone is 16 GiB.
    """

    def __init__(
        self,
        path: Path,
        precision: str = "fp32",
        threads: int | None = None,
        compiled_shapes: int = 4,
        hint: str = "LATENCY",
        release_above: int | None = RELEASE_ABOVE,
    ) -> None:
        if precision not in OV_PRECISIONS:
            raise ValueError(f"OpenVINO runs fp32, bf16 or fp16, not {precision!r}")
        self.path = path
        self.model = core().read_model(str(path))
        self.config = compile_config(precision, threads, hint)
        self.compiled_shapes = max(1, compiled_shapes)
        self.release_above = release_above
        self._compiled: OrderedDict[ShapeKey, _Compiled] = OrderedDict()
        self._lock = threading.Lock()
        self._requested = precision
        self._input_types = {
            port.get_any_name(): port.get_element_type().to_dtype() for port in self.model.inputs
        }
        self._output_names = [port.get_any_name() for port in self.model.outputs]
        self.compiles = 0
        """How many times a shape was compiled (a shape evicted and seen again counts twice)."""

    @property
    def input_name(self) -> str:
        """The first input's name."""
        return self.input_names[0]

    @property
    def input_names(self) -> list[str]:
        """Every input's name, in the graph's order."""
        return list(self._input_types)

    @property
    def output_names(self) -> list[str]:
        """Every output's name, in the graph's order."""
        return list(self._output_names)

    @property
    def input_width(self) -> int | None:
        """The fixed second dimension of the first input, when the graph declares one."""
        shape = self.model.inputs[0].get_partial_shape()
        if shape.rank.is_static and shape.rank.get_length() == 2 and shape[1].is_static:
            return int(shape[1].get_length())
        return None

    @property
    def provider(self) -> str:
        """`openvino:CPU`."""
        return "openvino:CPU"

    @property
    def device(self) -> str:
        """`cpu`."""
        return "cpu"

    @property
    def engine(self) -> str:
        """`openvino`."""
        return "openvino"

    @property
    def precision(self) -> str:
        """The inference precision the plugin compiled with (read back from a compiled shape
        when there is one: a CPU without bf16 may run a bf16 request in fp32), else the one
        asked for."""
        with self._lock:
            compiled = next(iter(self._compiled.values()), None)
        if compiled is None:
            return self._requested
        hint = compiled.model.get_property("INFERENCE_PRECISION_HINT")
        name = hint.get_type_name() if isinstance(hint, ov.Type) else str(hint)
        return PRECISION_NAMES.get(name, name)

    @property
    def shapes(self) -> list[ShapeKey]:
        """The input shapes compiled now, least recently used first."""
        with self._lock:
            return list(self._compiled)

    def run(self, inputs: FloatArray) -> dict[str, FloatArray]:
        """Runs the graph on one batch and names its outputs."""
        return self.run_feeds({self.input_name: inputs})

    def run_feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, FloatArray]:
        """Runs the graph with every input named, compiling its shapes first if new."""
        cast = {
            name: np.ascontiguousarray(value, dtype=self._input_types.get(name, value.dtype))
            for name, value in feeds.items()
        }
        compiled = self._for_shapes(tuple((name, tuple(v.shape)) for name, v in cast.items()))
        request, release = compiled.take_request(), False
        try:
            request.infer(cast)
            # By position: a compiled model's outputs are the model's, in order, but the
            # plugin's transformations may give a port more names than the ONNX file did.
            outputs = {
                name: np.array(request.get_output_tensor(index).data, dtype=np.float32)
                for index, name in enumerate(self._output_names)
            }
            release = self._releases([*cast.values(), *outputs.values()])
            return outputs
        finally:
            compiled.give_back(request, release)

    def _releases(self, arrays: list[np.ndarray]) -> bool:
        """Whether a call with these inputs and outputs gives its working memory back."""
        largest = max((array.size for array in arrays), default=0)
        return self.release_above is not None and largest >= self.release_above

    def release_memory(self) -> int:
        """Gives back the intermediate buffers of every compiled shape no call is running on
        (they are allocated again by the next call); how many shapes did."""
        with self._lock:
            compiled = list(self._compiled.values())
        return sum(entry.release() for entry in compiled)

    def _for_shapes(self, key: ShapeKey) -> _Compiled:
        with self._lock:
            compiled = self._compiled.get(key)
            if compiled is not None:
                self._compiled.move_to_end(key)
                return compiled
            # Compiling under the lock: a second caller of the same new shape waits for this
            # compile rather than compiling it again.
            # A clone shares the read model's constants, and the compiled model shares them
            # too where it needs no other layout: an SD-size decoder (188 MB) costs 112 MB a
            # shape at bf16, 200 at fp32; compiled from a fresh read of the file, 300-390.
            model = self.model.clone()
            model.reshape({name: ov.PartialShape(list(shape)) for name, shape in key})
            compiled = _Compiled(core().compile_model(model, "CPU", self.config))
            self.compiles += 1
            self._compiled[key] = compiled
            while len(self._compiled) > self.compiled_shapes:
                self._compiled.popitem(last=False)
            return compiled
