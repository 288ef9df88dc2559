"""Spatial autoencoders (issues 14 and 24): a TAESD-shaped, a small AutoencoderKL-shaped and an
SD-size AutoencoderKL (the real diffusers architectures, random weights), imported with `vae
import diffusers`, decoded at 256 and 512 pixels square:

    .venv/bin/python -m bench.spatial            # throughput, then peak and settled RSS
    .venv/bin/python -m bench.spatial --quick    # 1 and 8 clients, 3 s windows
    .venv/bin/python -m bench.spatial --service-root ../old-checkout   # another checkout served

Throughput: the raw engines in-process on the same decoder.onnx, each at its best batch size
(ONNX Runtime fp32; OpenVINO at f32 and at each lower precision the CPU runs natively: bf16 with
AMX or AVX-512 BF16, f16 with AVX-512 FP16), the service on its defaults (and with batching
forced on), and Triton (PyTriton's dynamic batcher, ONNX Runtime fp32, in its own virtualenv)
when it runs here, each driven by wrk posting raw float32 latents and reading raw uint8 images
(`/decode?format=raw`; Triton: the binary tensor extension both ways), one image a request; a
window lasts long enough for each client to finish three images. The service's image is compared
with ONNX Runtime fp32's (PSNR), and its images/s at 8 clients with each raw engine's (ratios).
Memory: the peak (VmHWM) and settled (VmRSS 5 s after) RSS of a fresh `vae serve` after one
decode at 512, 1024 and 2048 pixels square, on the defaults and on ONNX Runtime alone. Results:
bench/results/spatial-<time>.json and the terminal. The CPU's model and flags are recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench import machine
from bench.loadgen import LoadResult, ensure_wrk, run_wrk
from bench.models import ROOT
from bench.peers.install import PeerUnavailable, ensure_peer, peer_envs
from bench.procs import ServerProcess, free_port, status_mib

WORK = ROOT / "bench" / "work" / "spatial"
RESULTS = ROOT / "bench" / "results"
RAW_LUA = Path(__file__).with_name("post_raw.lua")

SMALL_KL: dict[str, Any] = {
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [32, 64, 128, 128],
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
}
"""Stable Diffusion's AutoencoderKL (4 levels, 8x downscaling, 2 resnets a level, a mid-block
attention, GroupNorm 32) at a quarter of its channels (SD: 128-256-512-512): about 1/16 of its
compute, so a 512-pixel decode fits this machine's two cores."""
SD_KL: dict[str, Any] = {**SMALL_KL, "block_out_channels": [128, 256, 512, 512]}
"""Stable Diffusion's own AutoencoderKL layout (128-256-512-512): about 2.5 TFLOP a 512 decode."""
MODELS: dict[str, tuple[str, dict[str, Any], str]] = {
    "taesd": ("AutoencoderTiny", {}, "TAESD (AutoencoderTiny's default config, 8x, 4 channels)"),
    "kl-small": ("AutoencoderKL", SMALL_KL, "AutoencoderKL, SD's layout at 1/4 of the channels"),
    "kl-sd": ("AutoencoderKL", SD_KL, "AutoencoderKL, SD's full layout (128-256-512-512)"),
}


@dataclass
class Point:
    """One measured point."""

    model: str
    size: int
    system: str
    clients: int
    images_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    batch: int | None = None


def prepare(key: str) -> Path:
    """The model imported into WORK/models (built and imported once, reused after)."""
    models_dir = WORK / "models"
    if (models_dir / key / "DEFAULT").exists():
        return models_dir
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import diffusers
    import torch

    from app.repository.store import ModelRepository
    from app.training.import_diffusers import import_diffusers

    class_name, config, _ = MODELS[key]
    torch.manual_seed(0)
    model = getattr(diffusers, class_name)(**config)
    folder = WORK / "diffusers" / key
    model.save_pretrained(str(folder))
    import_diffusers(ModelRepository(models_dir), folder, key)
    return models_dir


def _sweep(run: Any, size: int, system: str, seconds: float, batches: list[int]) -> list[Point]:
    """`run(z)` back to back at each batch size (while a larger batch still gains more than 5%):
    every batch size tried, the best images/s first."""
    tried: list[Point] = []
    for batch in batches:
        z = np.random.default_rng(0).standard_normal((batch, 4, size // 8, size // 8), np.float32)
        run(z)
        times = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds or len(times) < 2:
            t0 = time.perf_counter()
            run(z)
            times.append(time.perf_counter() - t0)
        rate = batch * len(times) / (time.perf_counter() - started)
        p50, p99 = np.percentile(times, [50, 99]) * 1000
        tried.append(Point("", size, system, 0, rate, float(p50), float(p99), batch=batch))
        if len(tried) > 1 and rate < 1.05 * max(p.images_per_s for p in tried[:-1]):
            break
    return sorted(tried, key=lambda point: -point.images_per_s)


def engine(
    decoder: Path, size: int, threads: int, seconds: float, batches: list[int] | None = None
) -> list[Point]:
    """ONNX Runtime fp32 alone on the decoder, every batch size tried, the best first."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(decoder), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return _sweep(
        lambda z: session.run(None, {name: z}),
        size,
        "raw onnxruntime fp32",
        seconds,
        batches or [1, 2, 4],
    )


def openvino_precisions() -> list[str]:
    """The inference precisions OpenVINO runs natively on this CPU (f32 always)."""
    import openvino as ov

    flags = machine.describe()["cpu flags"].split()
    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    native = ["f32"]
    if "BF16" in capabilities and ({"amx_bf16", "avx512_bf16"} & set(flags)):
        native.append("bf16")
    if "FP16" in capabilities and ({"avx512_fp16", "amx_fp16"} & set(flags)):
        native.append("f16")
    return native


def openvino_engine(
    decoder: Path, size: int, threads: int, seconds: float, hint: str, batches: list[int]
) -> list[Point]:
    """OpenVINO alone on the same decoder.onnx at one inference precision (`f32`, `bf16`,
    `f16`), compiled for each static batch shape, as its docs advise for CPU latency."""
    import openvino as ov

    core = ov.Core()
    compiled: dict[tuple[int, ...], Any] = {}

    def run(z: np.ndarray) -> Any:
        if z.shape not in compiled:
            model = core.read_model(str(decoder))
            model.reshape({model.inputs[0].get_any_name(): list(z.shape)})
            config = {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads,
                      "PERFORMANCE_HINT": "LATENCY"}  # fmt: skip
            compiled[z.shape] = core.compile_model(model, "CPU", config).create_infer_request()
        return compiled[z.shape].infer({0: z})

    label = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}[hint]
    return _sweep(run, size, f"raw openvino {label}", seconds, batches)


def reference_image(decoder: Path, size: int) -> np.ndarray:
    """ONNX Runtime fp32's decode of the bench's latent, as uint8 [H,W,3] (the service's raw
    format): what a lower precision's images are compared with."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(decoder), providers=["CPUExecutionProvider"])
    z = np.frombuffer(_body(size, WORK / "bodies" / f"z{size}.bin").read_bytes(), np.float32)
    out = session.run(None, {session.get_inputs()[0].name: z.reshape(1, 4, size // 8, size // 8)})
    unit = np.clip((out[0][0] + 1) / 2, 0, 1)  # the decoders give [-1, 1]
    return np.asarray(np.rint(unit * 255), np.uint8).transpose(1, 2, 0)


def psnr_db(image: np.ndarray, reference: np.ndarray) -> float:
    """PSNR of two uint8 images in dB (inf when equal)."""
    mse = float(np.mean((image.astype(np.float64) - reference.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


SERVICE_ROOT = [ROOT]  # the checkout whose `vae serve` is measured (--service-root)


def start_service(models_dir: Path, key: str, env: dict[str, str]) -> tuple[ServerProcess, str]:
    """`vae serve` on the model, ready (started in SERVICE_ROOT: that checkout's code)."""
    port = free_port()
    settings = {
        "VAE_MODELS_DIR": str(models_dir),
        "VAE_DATA_DIR": str(WORK / "data"),
        "VAE_DEFAULT_MODEL": key,
        "VAE_RELOAD_INTERVAL_S": "0",
        "VAE_MAX_BODY_BYTES": str(64 * 1024 * 1024),
        "VAE_REQUEST_TIMEOUT_S": "300",
        "PYTHONPATH": str(SERVICE_ROOT[0]),
        **env,
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    log = WORK / "logs" / f"serve-{key}-{port}.log"
    server = ServerProcess(f"service {key}", command, settings, SERVICE_ROOT[0], log)
    url = f"http://127.0.0.1:{port}"
    server.wait_ready(url + "/v2/health/ready", timeout=600)
    return server, url


def _body(size: int, path: Path) -> Path:
    z = np.random.default_rng(1).standard_normal((1, 4, size // 8, size // 8), np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(z.tobytes())
    return path


def _load(url: str, body: Path, clients: int, seconds: float, *args: str) -> LoadResult:
    """A closed-loop window (the server was warmed by one request at this size; a wrk warm-up
    would leave requests computing into the measured window on a machine this slow)."""
    return run_wrk(url, body, clients, seconds, timeout_s=120, script=RAW_LUA, script_args=args)


def _point(model: str, size: int, system: str, clients: int, load: LoadResult) -> Point:
    return Point(model, size, system, clients, load.rps, load.p50_ms, load.p99_ms, load.errors)


def window(seconds: float, rate: float | None, clients: int) -> float:
    """A load window long enough for every client to finish a few requests at `rate` images/s
    (a slow decoder's 8 clients would otherwise finish none in a short window)."""
    if not rate:
        return seconds
    return max(seconds, 3.0 * clients / rate)


def _slowest(*rates: float | None) -> float | None:
    """The lowest of the rates known (None when none is)."""
    known = [rate for rate in rates if rate]
    return min(known) if known else None


def service_points(
    key: str,
    models_dir: Path,
    sizes: list[int],
    clients: list[int],
    seconds: float,
    settings: dict[str, dict[str, str]],
    rates: dict[int, float],
    quality: dict[str, float],
) -> list[Point]:
    """The service under each named environment (`service`: its defaults) at each size and
    concurrency; the PSNR of its image against ONNX Runtime fp32's goes in `quality`."""
    points = []
    for name, env in settings.items():
        server, url = start_service(models_dir, key, env)
        try:
            for size in sizes:
                body = _body(size, WORK / "bodies" / f"z{size}.bin")
                shape = f"1,4,{size // 8},{size // 8}"
                target = f"{url}/decode?model={key}&shape={shape}&dtype=float32&format=raw"
                image = _fetch(target, body.read_bytes())  # warm, and the image to compare
                reference = reference_image(models_dir / key / "1" / "decoder.onnx", size)
                got = np.frombuffer(image, np.uint8).reshape(reference.shape)
                quality[f"{key} {size}px {name}"] = round(psnr_db(got, reference), 2)
                print(f"  {name} {key} {size}px PSNR vs onnxruntime fp32: "
                      f"{quality[f'{key} {size}px {name}']} dB", flush=True)  # fmt: skip
                own: float | None = None  # the first (fewest clients) window's rate
                for count in clients:
                    span = window(seconds, _slowest(own, rates.get(size)), count)
                    load = _load(target, body, count, span, "application/octet-stream")
                    points.append(_point(key, size, name, count, load))
                    print(_line(points[-1]), flush=True)
                    own = own or load.rps
        finally:
            server.stop()
    return points


def triton_python() -> Path | None:
    """The Triton peer's interpreter: $BENCH_TRITON_PYTHON, else bench/.venvs/triton's, made on
    first use as `bench.run` makes it; None (said) when it cannot be installed here."""
    if "BENCH_TRITON_PYTHON" in os.environ:
        return Path(os.environ["BENCH_TRITON_PYTHON"])
    try:
        return ensure_peer(peer_envs()["triton"], WORK / "logs" / "install-triton.log") / "python"
    except PeerUnavailable as error:
        print(f"  triton: {error}; not measured", flush=True)
        return None


def triton_points(
    key: str,
    models_dir: Path,
    sizes: list[int],
    clients: list[int],
    seconds: float,
    threads: int,
    rates: dict[int, float],
) -> list[Point]:
    """PyTriton's dynamic batcher on the same decoder.onnx (binary tensors in and out)."""
    python = triton_python()
    if python is None:
        return []
    port = free_port()
    decoder = models_dir / key / "1" / "decoder.onnx"
    command = [str(python), "-m", "bench.peers.triton_spatial", "--model", str(decoder),
               "--port", str(port), "--threads", str(threads), "--max-batch-size", "8"]  # fmt: skip
    log = WORK / "logs" / f"triton-{key}-{port}.log"
    server = ServerProcess("triton", command, {"PYTHONPATH": str(ROOT)}, ROOT, log)
    points = []
    try:
        server.wait_ready(f"http://127.0.0.1:{port}/v2/models/decoder/ready", timeout=300)
        for size in sizes:
            header = json.dumps({
                "inputs": [{"name": "z", "shape": [1, 4, size // 8, size // 8], "datatype": "FP32",
                            "parameters": {"binary_data_size": 4 * 4 * (size // 8) ** 2}}],
                "outputs": [{"name": "images", "parameters": {"binary_data": True}}],
            }, separators=(",", ":"))  # fmt: skip
            body = WORK / "bodies" / f"triton{size}.bin"
            body.write_bytes(header.encode() + _body(size, body.with_suffix(".z")).read_bytes())
            target = f"http://127.0.0.1:{port}/v2/models/decoder/infer"
            args = ("application/octet-stream", "Inference-Header-Content-Length", str(len(header)))
            _post(target, body.read_bytes(), {"Inference-Header-Content-Length": str(len(header))})
            own: float | None = None  # the first (fewest clients) window's rate
            for count in clients:
                span = window(seconds, _slowest(own, rates.get(size)), count)
                load = _load(target, body, count, span, *args)
                own = own or load.rps
                points.append(_point(key, size, "Triton (PyTriton)", count, load))
                print(_line(points[-1]), flush=True)
    except Exception as error:  # noted, the rest goes on
        print(f"  triton failed: {error}", flush=True)
    finally:
        server.stop()
    return points


def _vmhwm_mib(pid: int) -> float:
    peak = status_mib(pid, "VmHWM")
    return float("nan") if peak is None else peak


def peak_rss(
    key: str, models_dir: Path, sizes: list[int], threads: int, envs: dict[str, dict[str, str]]
) -> list[dict[str, Any]]:
    """VmHWM of a fresh service after one decode of each size under each named environment,
    and its VmRSS settled 5 s after (does the memory come back?)."""
    rows = []
    for size in sizes:
        for label, extra in envs.items():
            env = {"VAE_THREADS": str(threads), "VAE_REQUEST_TIMEOUT_S": "900", **extra}
            server, url = start_service(models_dir, key, env)
            try:
                before = status_mib(server.process.pid, "VmRSS") or float("nan")
                body = _body(size, WORK / "bodies" / f"z{size}.bin").read_bytes()
                shape = f"1,4,{size // 8},{size // 8}"
                started = time.perf_counter()
                status = _post(f"{url}/decode?model={key}&shape={shape}&format=raw", body)
                seconds = time.perf_counter() - started
                peak = _vmhwm_mib(server.process.pid)
                time.sleep(5)
                settled = status_mib(server.process.pid, "VmRSS") or float("nan")
            finally:
                server.stop()
            row = {"model": key, "size": size, "setting": label, "status": status,
                   "rss_before_mib": round(before), "peak_rss_mib": round(peak),
                   "settled_rss_mib": round(settled), "seconds": round(seconds, 2)}  # fmt: skip
            rows.append(row)
            print(f"  RSS {key} {size}px {label}: peak {peak:,.0f} MiB, settled {settled:,.0f} "
                  f"(idle {before:,.0f}), {seconds:.1f} s, {status}", flush=True)  # fmt: skip
    return rows


def _fetch(url: str, body: bytes) -> bytes:
    import urllib.request

    request = urllib.request.Request(
        url, body, {"content-type": "application/octet-stream"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=900) as reply:
        return bytes(reply.read())


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, body, {"content-type": "application/octet-stream", **(headers or {})}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as reply:
            reply.read()
            return int(reply.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def _line(point: Point) -> str:
    return (f"  {point.model:<8} {point.size:>4}px {point.system:<22} c={point.clients:<3} "
            f"{point.images_per_s:8.1f} images/s  p50 {point.p50_ms:8.1f} ms  "
            f"p99 {point.p99_ms:8.1f} ms  errors {point.errors}")  # fmt: skip


def ratios(points: list[Point], clients: int) -> dict[str, float]:
    """The service on its defaults against each raw engine's best, per model and size, at
    `clients` clients (the issue's bar: >= 3.5x raw ONNX Runtime fp32 and >= 0.9x raw OpenVINO
    bf16 on a CPU with AMX; >= 0.9x the faster fp32 engine without bf16)."""
    out: dict[str, float] = {}
    for served in points:
        if served.system != "service" or served.clients != clients:
            continue
        for raw in points:
            if raw.model == served.model and raw.size == served.size and raw.clients == 0:
                key = f"{served.model} {served.size}px service / {raw.system}"
                out[key] = round(served.images_per_s / raw.images_per_s, 2)
    return out


def _engines(
    key: str, models_dir: Path, sizes: list[int], seconds: float, threads: int, batches: list[int]
) -> tuple[list[Point], list[Point]]:
    """Every raw engine and precision at each size: the best of each, and the whole sweep."""
    decoder = models_dir / key / "1" / "decoder.onnx"
    best: list[Point] = []
    sweep: list[Point] = []
    for size in sizes:
        runs = [engine(decoder, size, threads, seconds, batches)]
        for hint in openvino_precisions():
            runs.append(openvino_engine(decoder, size, threads, seconds, hint, batches))
        for tried in runs:
            for point in tried:
                point.model = key
                print(_line(point) + f"  (batch {point.batch})", flush=True)
            best.append(tried[0])
            sweep += tried
    return best, sweep


def main(argv: list[str] | None = None) -> int:
    """Runs the spatial benchmark; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m bench.spatial", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default="taesd,kl-small,kl-sd")
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--clients", default=None, help="comma list (1,8,16)")
    parser.add_argument("--triton-clients", default=None, help="Triton's comma list (--clients')")
    parser.add_argument("--duration", type=float, default=None, help="seconds a window (5)")
    parser.add_argument("--batches", default="1,2,4", help="raw engines' batch sizes")
    parser.add_argument("--rss-sizes", default="512,1024,2048")
    parser.add_argument("--rss-model", default="kl-small")
    parser.add_argument("--service-root", type=Path, default=ROOT, help="checkout to serve")
    parser.add_argument(
        "--skip", default="", help="comma list of: engine, service, batching, triton, rss"
    )
    args = parser.parse_args(argv)
    SERVICE_ROOT[0] = args.service_root.resolve()
    clients = [int(c) for c in (args.clients or ("1,8" if args.quick else "1,8,16")).split(",")]
    seconds = args.duration or (3.0 if args.quick else 5.0)
    sizes = [int(s) for s in args.sizes.split(",")]
    batches = [int(b) for b in args.batches.split(",")]
    skip = set(args.skip.split(","))
    threads = machine.cores()
    ensure_wrk()
    about = machine.describe()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in about.items()), flush=True)
    points: list[Point] = []
    sweep: list[Point] = []  # the raw engines at every batch size tried (points keep the best)
    quality: dict[str, float] = {}
    services = {"service": {"VAE_THREADS": str(threads)}}
    if "batching" not in skip:
        services["service, batching on"] = {
            "VAE_THREADS": str(threads), "VAE_SPATIAL_BATCHING": "on", "VAE_MAX_BATCH_SIZE": "8",
            "VAE_MAX_BATCH_PIXELS": str(8 * 256 * 256),
        }  # fmt: skip
    for key in args.models.split(","):
        models_dir = prepare(key)
        print(f"model {key}: {MODELS[key][2]}", flush=True)
        rates: dict[int, float] = {}  # the fastest raw engine's images/s a size
        fp32: dict[int, float] = {}  # ONNX Runtime fp32's, the engine Triton runs
        if "engine" not in skip:
            best, tried = _engines(key, models_dir, sizes, seconds, threads, batches)
            points += best
            sweep += tried
            for point in best:
                rates[point.size] = max(rates.get(point.size, 0.0), point.images_per_s)
                if point.system == "raw onnxruntime fp32":
                    fp32[point.size] = point.images_per_s
        if "service" not in skip:
            points += service_points(
                key, models_dir, sizes, clients, seconds, services, rates, quality
            )
        if "triton" not in skip:
            at = (
                [int(c) for c in args.triton_clients.split(",")] if args.triton_clients else clients
            )
            points += triton_points(key, models_dir, sizes, at, seconds, threads, fp32)
    rss: list[dict[str, Any]] = []
    if "rss" not in skip:
        envs = {"defaults": {}, "VAE_ENGINE=onnxruntime": {"VAE_ENGINE": "onnxruntime"}}
        sizes_rss = [int(s) for s in args.rss_sizes.split(",")]
        rss = peak_rss(args.rss_model, prepare(args.rss_model), sizes_rss, threads, envs)
    compared = ratios(points, 8)
    for line, ratio in compared.items():
        print(f"  {line}: {ratio}x", flush=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"spatial-{stamp}.json"
    out.write_text(json.dumps({"machine": about, "points": [asdict(p) for p in points],
                               "engine_sweep": [asdict(p) for p in sweep], "psnr_db": quality,
                               "ratios_at_8_clients": compared, "service_root": str(SERVICE_ROOT[0]),
                               "peak_rss": rss, "argv": sys.argv[1:]}, indent=1))  # fmt: skip
    print(f"results in {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
