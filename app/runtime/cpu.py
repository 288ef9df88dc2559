"""What this machine's CPU can do: its model name, its flags (/proc/cpuinfo), its cores, and
whether it runs bfloat16 natively (AMX or AVX-512 BF16, confirmed by OpenVINO's CPU plugin)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = {"amx_bf16": "AMX", "avx512_bf16": "AVX-512 BF16"}
"""The flags that mean native bfloat16 arithmetic, with the name a reason text gives them."""
FP16_FLAGS = {"amx_fp16": "AMX-FP16", "avx512_fp16": "AVX-512 FP16"}


@dataclass(frozen=True)
class CpuInfo:
    """The CPU as the engines care about it. `capabilities` is OpenVINO's CPU
    `OPTIMIZATION_CAPABILITIES` (e.g. FP32, BF16, FP16, INT8), empty when OpenVINO is absent."""

    model: str
    flags: frozenset[str]
    cores: int
    capabilities: frozenset[str] = field(default_factory=frozenset)

    def bf16_units(self) -> list[str]:
        """The bfloat16 units the CPU has, by name (`AMX`, `AVX-512 BF16`), best first."""
        return [name for flag, name in BF16_FLAGS.items() if flag in self.flags]

    def native_bf16(self) -> bool:
        """Whether bfloat16 runs natively: a bf16 flag, and OpenVINO's plugin offering BF16."""
        return bool(self.bf16_units()) and "BF16" in self.capabilities

    def native_fp16(self) -> bool:
        """Whether float16 matrix arithmetic is native: AMX-FP16 (AVX-512 FP16 alone runs the
        convolutions slower than fp32 in OpenVINO), and OpenVINO's plugin offering FP16."""
        return "amx_fp16" in self.flags and "FP16" in self.capabilities

    def as_json(self) -> dict[str, object]:
        """The CPU for a results file or `GET /models/{name}`: model, cores, the flags that
        matter to the engines, OpenVINO's capabilities, whether bf16 is native."""
        wanted = {*BF16_FLAGS, *FP16_FLAGS, "avx2", "avx512f", "amx_tile", "amx_int8", "fma"}
        return {
            "model": self.model,
            "cores": self.cores,
            "flags": sorted(self.flags & wanted),
            "openvino_capabilities": sorted(self.capabilities),
            "native_bf16": self.native_bf16(),
            "native_fp16": self.native_fp16(),
        }


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """The model name and flags of the first processor in a /proc/cpuinfo text."""
    model, flags = "unknown", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown":
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = frozenset(value.split())
    return model, flags


def openvino_capabilities() -> frozenset[str]:
    """OpenVINO's CPU `OPTIMIZATION_CAPABILITIES`, empty when OpenVINO cannot say."""
    try:
        from app.runtime.openvino_graph import core

        return frozenset(str(c) for c in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # no OpenVINO or no CPU plugin: no capabilities
        return frozenset()


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def read_cpu(cpuinfo: str | None = None, capabilities: frozenset[str] | None = None) -> CpuInfo:
    """The CPU from a cpuinfo text and OpenVINO's capabilities (each read from this machine
    when not given: tests pass both)."""
    if cpuinfo is None:
        cpuinfo = CPUINFO.read_text() if CPUINFO.exists() else ""
    if capabilities is None:
        capabilities = openvino_capabilities()
    model, flags = parse_cpuinfo(cpuinfo)
    return CpuInfo(model, flags, usable_cores(), capabilities)


@lru_cache(maxsize=1)
def this_cpu() -> CpuInfo:
    """This machine's CPU, read once."""
    return read_cpu()
