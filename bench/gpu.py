"""The GPU check (issue 24): a GPU machine runs it in under five minutes.

    python -m bench.gpu            # CUDA fp32 and fp16 with I/O binding against the CPU engines
    python -m bench.gpu --quick    # one size, 1-second windows

It loads the bench's kl-small decoder (`bench.spatial`'s AutoencoderKL at 1/4 of SD's channels,
imported once into bench/work/spatial) on ONNX Runtime's CUDA execution provider at fp32 and at
fp16 (converted at load), both through I/O binding (app/runtime/cuda.py); checks each against
ONNX Runtime fp32 on the CPU (PSNR of the uint8 images >= 40 dB); and prints images/s at 256 and
512 pixels square for the GPU (batch 1 and 4) and for the CPU engines (ONNX Runtime fp32, and
OpenVINO at each precision app/runtime/engines.py would consider on this CPU). Without the CUDA
provider (onnxruntime rather than onnxruntime-gpu, or no GPU) it says so, runs the CPU half in
its quick form, and exits 0; a failed parity check exits 1. Results:
bench/results/gpu-<time>.json, with bench/machine.py's description of the machine and the GPU's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from bench import machine
from bench.spatial import RESULTS, prepare

MODEL = "kl-small"
GATE_DB = 40.0
GPU_BATCHES = (1, 4)


@dataclass
class Point:
    """One throughput measurement."""

    system: str
    size: int
    batch: int
    images_per_s: float
    p50_ms: float


@dataclass
class Parity:
    """One precision's images against ONNX Runtime fp32 on the CPU."""

    system: str
    size: int
    psnr_db: float
    passed: bool


@dataclass(frozen=True)
class Plan:
    """What one run measures: image sizes, seconds a window, and whether the GPU half runs."""

    sizes: tuple[int, ...]
    seconds: float
    gpu: bool


def plan(argv: list[str] | None, cuda: bool) -> Plan:
    """The run `argv` asks for on a machine with (`cuda`) or without the CUDA provider: without
    it, the CPU half in its quick form whatever was asked."""
    parser = argparse.ArgumentParser(prog="python -m bench.gpu", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="256 px only, 1-second windows")
    parser.add_argument("--sizes", default=None, help="comma list of image sizes (256,512)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds a window (3)")
    args = parser.parse_args(argv)
    quick = args.quick or not cuda
    sizes = args.sizes or ("256" if quick else "256,512")
    seconds = args.seconds or (1.0 if quick else 3.0)
    return Plan(tuple(int(s) for s in sizes.split(",")), seconds, cuda)


def latents(size: int, batch: int = 1) -> np.ndarray:
    """The bench's latents for a `size`-pixel image (8x downscaling, 4 channels), seed 0."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((batch, 4, size // 8, size // 8), np.float32)


def as_image(decoded: np.ndarray) -> np.ndarray:
    """A decoder's [-1, 1] output as the service's uint8 pixels."""
    return np.asarray(np.rint(np.clip((decoded + 1) / 2, 0, 1) * 255), np.uint8)


def psnr_db(image: np.ndarray, reference: np.ndarray) -> float:
    """PSNR of two uint8 images in dB (inf when equal)."""
    mse = float(np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else round(10 * float(np.log10(255.0**2 / mse)), 2)


def measure(run: Callable[[np.ndarray], Any], system: str, z: np.ndarray, seconds: float) -> Point:
    """`run(z)` back to back for `seconds` (at least twice) after one warm-up call."""
    run(z)
    times = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(times) < 2:
        t0 = time.perf_counter()
        run(z)
        times.append(time.perf_counter() - t0)
    rate = len(z) * len(times) / (time.perf_counter() - started)
    point = Point(system, z.shape[-1] * 8, len(z), round(rate, 2),
                  round(float(np.median(times)) * 1000, 1))  # fmt: skip
    print(f"  {system:<34} {point.size:>4}px batch {point.batch}  {point.images_per_s:8.2f} "
          f"images/s  p50 {point.p50_ms:8.1f} ms", flush=True)  # fmt: skip
    return point


def gpu_description() -> str:
    """The GPUs nvidia-smi lists (name, memory, driver), or why there is none to describe."""
    query = ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
    try:
        done = subprocess.run(query, capture_output=True, text=True, check=False, timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return "none (no nvidia-smi)"
    return "; ".join(done.stdout.strip().splitlines()) or f"none ({done.stderr.strip()[:200]})"


def cpu_engines(decoder: Path, plan: Plan, threads: int) -> list[Point]:
    """ONNX Runtime fp32 on the CPU provider, then OpenVINO at each precision the engine choice
    would try on this CPU, at batch 1."""
    import onnxruntime as ort

    from app.runtime.cpu import this_cpu
    from app.runtime.engines import EngineOptions, candidates, open_graph
    from app.runtime.graph import Graph

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(decoder), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    graphs: list[tuple[str, Graph]] = []
    if find_spec("openvino") is None:
        print("  OpenVINO is not installed: its CPU rows are skipped", flush=True)
    else:
        for spec in candidates("openvino", "auto", this_cpu(), False):
            opened = open_graph(decoder, spec, EngineOptions(threads=threads))
            graphs.append((f"cpu {spec.label}", opened))
    points = []
    for size in plan.sizes:
        z = latents(size)
        points.append(measure(lambda x: session.run(None, {name: x}), BASELINE, z,
                              plan.seconds))  # fmt: skip
        for system, graph in graphs:
            points.append(measure(graph.run, system, z, plan.seconds))
    return points


def parity(
    run: Callable[[np.ndarray], dict[str, np.ndarray]],
    system: str,
    references: dict[int, np.ndarray],
) -> list[Parity]:
    """`run`'s images at each size against ONNX Runtime fp32's on the CPU."""
    checked = []
    for size, reference in references.items():
        got = psnr_db(as_image(run(latents(size))["x"]), reference)
        checked.append(Parity(system, size, got, got >= GATE_DB))
        verdict = "ok" if got >= GATE_DB else f"FAILS the {GATE_DB:g} dB gate"
        print(
            f"  parity {system:<27} {size:>4}px  PSNR {got} dB vs cpu fp32: {verdict}", flush=True
        )
    return checked


def gpu_half(
    decoder: Path, plan: Plan, references: dict[int, np.ndarray]
) -> tuple[list[Point], list[Parity], list[str]]:
    """CUDA at fp32 and fp16 with I/O binding (and fp32 without it, what binding saves): parity,
    then images/s at batch 1 and 4. The third list says what went wrong, if anything did."""
    import onnxruntime as ort

    from app.runtime.cuda import CUDA_PROVIDER, CudaOptions, load_bound_graph, providers_for

    points: list[Point] = []
    checked: list[Parity] = []
    problems: list[str] = []
    for precision in ("fp32", "fp16"):
        graph = load_bound_graph(decoder, precision, "cuda")
        system = f"cuda onnxruntime {precision} io-binding"
        if graph.device != "cuda":
            problems.append(f"{precision}: CUDA did not start, {graph.provider} ran the graph")
            continue
        checked += parity(graph.run, system, references)
        for size in plan.sizes:
            for batch in GPU_BATCHES:
                points.append(measure(graph.run, system, latents(size, batch), plan.seconds))
    plain = ort.InferenceSession(str(decoder), providers=providers_for("cuda", CudaOptions()))
    if plain.get_providers()[0] == CUDA_PROVIDER:
        name = plain.get_inputs()[0].name
        for size in plan.sizes:
            z = latents(size)
            points.append(measure(lambda x: plain.run(None, {name: x}),
                                  "cuda onnxruntime fp32 session.run", z, plan.seconds))  # fmt: skip
    return points, checked, problems


def cpu_fp16_parity(decoder: Path, references: dict[int, np.ndarray]) -> list[Parity]:
    """The float16 graph the GPU would get, run on the CPU provider (its Cast nodes and half
    weights, not the GPU's half arithmetic): what the conversion alone costs in PSNR."""
    from app.runtime.cuda import load_bound_graph

    graph = load_bound_graph(decoder, "fp16", "cpu", threads=machine.cores())
    return parity(graph.run, "cpu onnxruntime fp16 (converted)", references)


def no_cuda() -> str:
    """Why there is no GPU half: the build or the device."""
    import onnxruntime as ort

    from app.runtime.cuda import cuda_in_build

    if cuda_in_build():
        return "CUDAExecutionProvider is in this ONNX Runtime but did not start (no GPU or driver?)"
    return (f"no CUDA execution provider in this ONNX Runtime (providers: "
            f"{ort.get_available_providers()}; a GPU machine needs onnxruntime-gpu)")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Runs the GPU check; returns the exit code (1 when a GPU precision fails its parity)."""
    from app.runtime.cpu import this_cpu
    from app.runtime.cuda import cuda_available
    from app.runtime.sessions import cpu_session

    started = time.perf_counter()
    cuda = cuda_available()
    run = plan(argv if argv is not None else sys.argv[1:], cuda)
    about = {**machine.describe(), "gpu": gpu_description()}
    print("machine: " + "; ".join(f"{k} {v}" for k, v in about.items()), flush=True)
    if not cuda:
        print(f"{no_cuda()}: the GPU half is skipped, the CPU half runs quick", flush=True)
    decoder = prepare(MODEL) / MODEL / "1" / "decoder.onnx"
    reference = cpu_session(decoder)
    references = {s: as_image(reference.run(None, {"z": latents(s)})[0]) for s in run.sizes}
    points = cpu_engines(decoder, run, machine.cores())
    checked = cpu_fp16_parity(decoder, references)
    problems: list[str] = []
    if run.gpu:
        gpu_points, gpu_checked, problems = gpu_half(decoder, run, references)
        points += gpu_points
        checked += gpu_checked
    failed = [c for c in checked if c.system.startswith("cuda") and not c.passed]
    elapsed = round(time.perf_counter() - started, 1)
    print(f"{elapsed} s in all (a GPU machine's budget: 300 s)", flush=True)
    for line, ratio in speedups(points).items():
        print(f"  {line}: {ratio}x", flush=True)
    for problem in problems:
        print(f"  problem: {problem}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"gpu-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(report(about, this_cpu().as_json(), run, points, checked, problems,
                                     elapsed), indent=1))  # fmt: skip
    print(f"results in {out}", flush=True)
    return 1 if failed or problems else 0


BASELINE = "cpu onnxruntime fp32"


def speedups(points: list[Point]) -> dict[str, float]:
    """Each system's best images/s (any batch) over ONNX Runtime fp32 on the CPU, per size."""
    out: dict[str, float] = {}
    for size in sorted({p.size for p in points}):
        here = [p for p in points if p.size == size]
        base = max((p.images_per_s for p in here if p.system == BASELINE), default=0.0)
        if not base:
            continue
        for system in dict.fromkeys(p.system for p in here if p.system != BASELINE):
            best = max(p.images_per_s for p in here if p.system == system)
            out[f"{size}px {system} / {BASELINE}"] = round(best / base, 2)
    return out


def report(
    about: dict[str, str],
    cpu: dict[str, object],
    run: Plan,
    points: list[Point],
    checked: list[Parity],
    problems: list[str],
    elapsed: float,
) -> dict[str, Any]:
    """The results file's content."""
    return {
        "machine": about,
        "cpu": cpu,
        "model": MODEL,
        "cuda": run.gpu,
        "plan": asdict(run),
        "gate_db": GATE_DB,
        "points": [asdict(p) for p in points],
        "parity": [asdict(c) for c in checked],
        "speedups": speedups(points),
        "problems": problems,
        "elapsed_s": elapsed,
        "argv": sys.argv[1:],
    }


if __name__ == "__main__":
    sys.exit(main())
