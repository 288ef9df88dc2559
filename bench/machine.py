"""A description of the machine and the software under test, for the results."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# The CPU features that decide how fast an inference engine can run (vector width, bf16, AMX).
INFERENCE_FLAGS = (
    "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_bf16", "amx_int8",
)  # fmt: skip


def _cpu_flags() -> str:
    """The inference-relevant flags the CPU has, as /proc/cpuinfo lists them."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return " ".join(flag for flag in INFERENCE_FLAGS if flag in present) or "none of note"
    return "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _wrk_version() -> str:
    try:
        done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    except FileNotFoundError:  # bench.gpu runs no load generator
        return "not installed"
    return (done.stdout or done.stderr).splitlines()[0] if (done.stdout or done.stderr) else "?"


def _onnxruntime_version() -> str:
    """ONNX Runtime's version, and which build: a GPU machine has onnxruntime-gpu instead."""
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            return version(name) + ("" if name == "onnxruntime" else " (onnxruntime-gpu)")
        except PackageNotFoundError:
            continue
    return "not installed"


def describe() -> dict[str, str]:
    """CPU and its inference-relevant flags, cores, memory, OS, Python, ONNX Runtime, wrk, and the load when the run began."""
    load1, load5, _ = os.getloadavg()
    return {
        "cpu": _cpu_model(),
        "cpu flags": _cpu_flags(),
        "cores": str(len(os.sched_getaffinity(0))),
        "memory": f"{_memory_gib():.1f} GiB",
        "gpu": "none",
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "onnxruntime": _onnxruntime_version(),
        "wrk": _wrk_version(),
        "load average at start (1 min, 5 min)": f"{load1:.2f}, {load5:.2f}",
    }


def cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0))
