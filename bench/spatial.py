"""Spatial autoencoders (issue 14): a TAESD-shaped and a small AutoencoderKL-shaped model (the
real diffusers architectures, random weights), imported with `vae import diffusers`, decoded at
256 and 512 pixels square:

    .venv/bin/python -m bench.spatial            # throughput, then peak RSS
    .venv/bin/python -m bench.spatial --quick    # 1 and 8 clients, 3 s windows

Throughput: the raw engine (ONNX Runtime in-process on the same decoder.onnx, best batch size),
the service on its defaults (on a CPU, `VAE_SPATIAL_BATCHING=auto` serves spatial models
unbatched) and with batching forced on, and Triton (PyTriton's dynamic batcher, in its own
virtualenv) when it runs here, each driven by wrk posting raw float32 latents and reading raw
uint8 images (`/decode?format=raw`; Triton: the binary tensor extension both ways), one image a
request. Memory: the peak RSS (VmHWM) of a fresh `vae serve` after one decode at 512, 1024 and
2048 pixels square, tiling on (512-pixel tiles) and off. Results: bench/results/spatial-<time>.json
and the terminal.
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
MODELS: dict[str, tuple[str, dict[str, Any], str]] = {
    "taesd": ("AutoencoderTiny", {}, "TAESD (AutoencoderTiny's default config, 8x, 4 channels)"),
    "kl-small": ("AutoencoderKL", SMALL_KL, "AutoencoderKL, SD's layout at 1/4 of the channels"),
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


def engine(decoder: Path, size: int, threads: int, seconds: float) -> list[Point]:
    """ONNX Runtime alone on the decoder at batch 1, 2, 4 (while a larger batch still gains
    more than 5%): every batch size tried, the best images/s first."""
    from app.runtime.sessions import load_graph

    graph = load_graph(decoder, threads)
    tried: list[Point] = []
    for batch in (1, 2, 4):
        z = np.random.default_rng(0).standard_normal((batch, 4, size // 8, size // 8), np.float32)
        graph.run(z)
        times = []
        started = time.perf_counter()
        while time.perf_counter() - started < seconds or len(times) < 2:
            t0 = time.perf_counter()
            graph.run(z)
            times.append(time.perf_counter() - t0)
        rate = batch * len(times) / (time.perf_counter() - started)
        p50, p99 = np.percentile(times, [50, 99]) * 1000
        tried.append(Point("", size, "raw engine", 0, rate, float(p50), float(p99), batch=batch))
        if len(tried) > 1 and rate < 1.05 * max(p.images_per_s for p in tried[:-1]):
            break
    return sorted(tried, key=lambda point: -point.images_per_s)


def start_service(models_dir: Path, key: str, env: dict[str, str]) -> tuple[ServerProcess, str]:
    """`vae serve` on the model, ready."""
    port = free_port()
    settings = {
        "VAE_MODELS_DIR": str(models_dir),
        "VAE_DATA_DIR": str(WORK / "data"),
        "VAE_DEFAULT_MODEL": key,
        "VAE_RELOAD_INTERVAL_S": "0",
        "VAE_MAX_BODY_BYTES": str(64 * 1024 * 1024),
        "VAE_REQUEST_TIMEOUT_S": "120",
        **env,
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    log = WORK / "logs" / f"serve-{key}-{port}.log"
    server = ServerProcess(f"service {key}", command, settings, ROOT, log)
    url = f"http://127.0.0.1:{port}"
    server.wait_ready(url + "/v2/health/ready")
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


def service_points(
    key: str, models_dir: Path, sizes: list[int], clients: list[int], seconds: float, threads: int
) -> list[Point]:
    """The service on its defaults (`VAE_SPATIAL_BATCHING=auto`: on a CPU, unbatched) and with
    batching forced on, at each size and concurrency."""
    points = []
    for setting in ("auto", "on"):
        env = {
            "VAE_SPATIAL_BATCHING": setting,
            "VAE_THREADS": str(threads),
            "VAE_MAX_BATCH_SIZE": "8",
            "VAE_MAX_BATCH_PIXELS": str(8 * 256 * 256),
            "VAE_TILE_SIZE": "0",
        }
        server, url = start_service(models_dir, key, env)
        name = "service" if setting == "auto" else "service, batching on"
        try:
            for size in sizes:
                body = _body(size, WORK / "bodies" / f"z{size}.bin")
                shape = f"1,4,{size // 8},{size // 8}"
                target = f"{url}/decode?model={key}&shape={shape}&dtype=float32&format=raw"
                _post(target, body.read_bytes())  # warm: this size's buffers exist before load
                for count in clients:
                    load = _load(target, body, count, seconds, "application/octet-stream")
                    points.append(_point(key, size, name, count, load))
                    print(_line(points[-1]), flush=True)
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
    key: str, models_dir: Path, sizes: list[int], clients: list[int], seconds: float, threads: int
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
            for count in clients:
                load = _load(target, body, count, seconds, *args)
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
    key: str, models_dir: Path, sizes: list[int], threads: int, tiles: tuple[int, ...] = (512, 0)
) -> list[dict[str, Any]]:
    """VmHWM of a fresh service after one decode of each size, tiling on (512) and off."""
    rows = []
    for size in sizes:
        for tile in tiles:
            env = {"VAE_THREADS": str(threads), "VAE_TILE_SIZE": str(tile),
                   "VAE_MAX_BATCH_PIXELS": str(512 * 512), "VAE_REQUEST_TIMEOUT_S": "900"}  # fmt: skip
            server, url = start_service(models_dir, key, env)
            try:
                before = _vmhwm_mib(server.process.pid)
                body = _body(size, WORK / "bodies" / f"z{size}.bin").read_bytes()
                shape = f"1,4,{size // 8},{size // 8}"
                started = time.perf_counter()
                status = _post(f"{url}/decode?model={key}&shape={shape}&format=raw", body)
                seconds = time.perf_counter() - started
                after = _vmhwm_mib(server.process.pid)
            finally:
                server.stop()
            row = {"model": key, "size": size, "tiling": bool(tile), "status": status,
                   "rss_before_mib": round(before), "peak_rss_mib": round(after),
                   "seconds": round(seconds, 2)}  # fmt: skip
            rows.append(row)
            print(f"  peak RSS {key} {size}px tiling {'on ' if tile else 'off'}: "
                  f"{after:,.0f} MiB (idle {before:,.0f}), {seconds:.1f} s, {status}", flush=True)  # fmt: skip
    return rows


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


def main(argv: list[str] | None = None) -> int:
    """Runs the spatial benchmark; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m bench.spatial", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--models", default="taesd,kl-small")
    parser.add_argument("--sizes", default="256,512")
    parser.add_argument("--clients", default=None, help="comma list (1,8,16)")
    parser.add_argument("--duration", type=float, default=None, help="seconds a window (5)")
    parser.add_argument("--rss-sizes", default="512,1024,2048")
    parser.add_argument("--rss-model", default="taesd")
    parser.add_argument("--rss-tiles", default="512,0", help="tile sizes (0: tiling off)")
    parser.add_argument("--skip", default="", help="comma list of: engine, service, triton, rss")
    args = parser.parse_args(argv)
    clients = [int(c) for c in (args.clients or ("1,8" if args.quick else "1,8,16")).split(",")]
    seconds = args.duration or (3.0 if args.quick else 5.0)
    sizes = [int(s) for s in args.sizes.split(",")]
    skip = set(args.skip.split(","))
    threads = machine.cores()
    ensure_wrk()
    about = machine.describe()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in about.items()), flush=True)
    points: list[Point] = []
    sweep: list[Point] = []  # the raw engine at every batch size tried (points keep the best)
    rss: list[dict[str, Any]] = []
    for key in args.models.split(","):
        models_dir = prepare(key)
        print(f"model {key}: {MODELS[key][2]}", flush=True)
        if "engine" not in skip:
            for size in sizes:
                tried = engine(models_dir / key / "1" / "decoder.onnx", size, threads, seconds)
                for point in tried:
                    point.model = key
                    print(_line(point) + f"  (batch {point.batch})", flush=True)
                points.append(tried[0])
                sweep += tried
        if "service" not in skip:
            points += service_points(key, models_dir, sizes, clients, seconds, threads)
        if "triton" not in skip:
            points += triton_points(key, models_dir, sizes, clients, seconds, threads)
    if "rss" not in skip:
        rss = peak_rss(
            args.rss_model,
            prepare(args.rss_model),
            [int(s) for s in args.rss_sizes.split(",")],
            threads,
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"spatial-{stamp}.json"
    out.write_text(json.dumps({"machine": about, "points": [asdict(p) for p in points],
                               "engine_sweep": [asdict(p) for p in sweep],
                               "peak_rss": rss, "argv": sys.argv[1:]}, indent=1))  # fmt: skip
    print(f"results in {out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
