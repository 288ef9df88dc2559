"""Video autoencoders (issue 25): a Wan 2.1-shaped and a HunyuanVideo-shaped autoencoder (the real
diffusers architectures at a fraction of their channels, random weights), imported with `vae
import diffusers`, decoding clips of 9, 33 and 81 frames:

    .venv/bin/python -m bench.video            # frames/s at 1 and 4 clients, then peak RSS
    .venv/bin/python -m bench.video --quick    # one model, short windows

Throughput, frames/s (a clip's frames times clips decoded a second):
- the raw engine: ONNX Runtime sessions on the version's own graphs, in this process, walking each
  clip's time chunks exactly as the service does (`app/serving/video/timeline.walk`), one thread a
  client, nothing else (no HTTP, no pixels converted, no video encoded);
- the service on its defaults (`vae serve`), driven by wrk posting raw float32 latents to
  `/decode` and reading raw uint8 frames (`format=raw`) and, apart, the streamed mp4;
- diffusers' own PyTorch `decode` in process (the peer a user would otherwise run).
Memory: the peak RSS (VmHWM) of a fresh `vae serve` after one 9, 33 and 81 frame decode to mp4,
and to raw frames. Results: bench/results/video-<time>.json and the terminal; the CPU's model and
flags are recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench import machine
from bench.loadgen import ensure_wrk, run_wrk
from bench.models import ROOT
from bench.procs import ServerProcess, free_port, status_mib

WORK = ROOT / "bench" / "work" / "video"
CLIPS_A_CLIENT = 20
"""wrk counts the requests that finished inside its window: the clip each client has in flight
at the end is lost, so a window holds this many clips a client (the loss at most ~5%)."""
RESULTS = ROOT / "bench" / "results"
RAW_LUA = Path(__file__).with_name("post_raw.lua")

WAN: dict[str, Any] = {"base_dim": 32, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2}
"""Wan 2.1's autoencoder layout (4 levels, 8x spatial and 4x temporal compression, causal 3-D
convolutions with a feature cache, 16 latent channels) at a third of its channels (Wan: 96)."""
HUNYUAN: dict[str, Any] = {"block_out_channels": [32, 64, 128, 128], "norm_num_groups": 32}
"""HunyuanVideo's autoencoder layout (8x spatial, 4x temporal, 16 channels, mid-block attention)
at a quarter of its channels (HunyuanVideo: 128-256-512-512)."""
MODELS: dict[str, tuple[str, dict[str, Any], str]] = {
    "wan": ("AutoencoderKLWan", WAN, "Wan 2.1's layout at 1/3 of the channels (causal cache)"),
    "hunyuan": (
        "AutoencoderKLHunyuanVideo",
        HUNYUAN,
        "HunyuanVideo's layout at 1/4 of the channels (temporal tiles)",
    ),
}


@dataclass
class Point:
    """One measured point: frames/s of a system at a number of clients."""

    model: str
    frames: int
    system: str
    clients: int
    frames_per_s: float
    p50_ms: float
    errors: int = 0


def prepare(key: str) -> Path:
    """The model imported into WORK/models (built and imported once, reused after)."""
    models_dir = WORK / "models"
    if (models_dir / key / "DEFAULT").exists():
        return models_dir
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import diffusers
    import torch

    from app.repository.store import ModelRepository
    from app.training.import_video import import_video_autoencoder

    class_name, config, _ = MODELS[key]
    torch.manual_seed(0)
    model = getattr(diffusers, class_name)(**config)
    folder = WORK / "diffusers" / key
    model.save_pretrained(str(folder))
    import_video_autoencoder(ModelRepository(models_dir), folder, key)
    return models_dir


def manifest_of(models_dir: Path, key: str) -> Any:
    """The version's manifest."""
    from app.repository.manifest import Manifest

    return Manifest.model_validate_json((models_dir / key / "1" / "manifest.json").read_text())


def latents(manifest: Any, frames: int, size: int) -> np.ndarray:
    """Seeded latents [1, C, T, h, w] of a clip of `frames` frames, size x size pixels."""
    t = manifest.video.latent_frames(frames)
    scale, channels = manifest.spatial.downscale, manifest.spatial.latent_channels
    shape = (1, channels, t, size // scale, size // scale)
    return np.random.default_rng(1).standard_normal(shape, np.float32)


class RawDecoder:
    """The version's decoder graphs on one engine alone (ONNX Runtime fp32, or OpenVINO at a
    precision, compiled per static shape as its docs advise for CPU latency), walked as the
    service walks them: the same chunks, the same caches."""

    def __init__(self, directory: Path, manifest: Any, threads: int, engine: str) -> None:
        self.chunks = manifest.video.decode
        self.manifest = manifest
        self.engine = engine
        names = ["decoder.onnx"]
        if self.chunks.scheme == "causal_cache":
            names.append("decoder_first.onnx")
        self.paths = {name: directory / name for name in names}
        self.threads = threads
        self._lock = threading.Lock()
        self._compiled: dict[tuple[Any, ...], Any] = {}
        self._requests: dict[tuple[Any, ...], Any] = {}  # OpenVINO's, one a shape and thread
        if engine == "onnxruntime fp32":
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            self.sessions = {
                name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                for name, path in self.paths.items()
            }

    def _run(self, name: str, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """The graph's outputs in order: x, then cache_out_0..K-1."""
        if self.engine == "onnxruntime fp32":
            return list(self.sessions[name].run(None, feeds))
        import openvino as ov

        key = (name, *((k, v.shape) for k, v in sorted(feeds.items())))
        with self._lock:  # one compiled model a shape; one infer request a thread
            if key not in self._compiled:
                core = ov.Core()
                model = core.read_model(str(self.paths[name]))
                model.reshape({k: list(v.shape) for k, v in feeds.items()})
                hint = {"openvino bf16": "bf16", "openvino fp32": "f32"}[self.engine]
                config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY",
                          "INFERENCE_NUM_THREADS": self.threads}  # fmt: skip
                self._compiled[key] = core.compile_model(model, "CPU", config)
            compiled = self._compiled[key]
        with self._lock:
            slot = (key, threading.get_ident())
            request = self._requests.get(slot)
            if request is None:
                request = self._requests[slot] = compiled.create_infer_request()
        result = request.infer(feeds)
        return [result[port] for port in compiled.outputs]

    def decode(self, z: np.ndarray) -> int:
        """Decodes one clip chunk by chunk (its pieces dropped as they come); the frames made."""
        from app.serving.video.timeline import Step, walk

        caches_count = self.chunks.caches

        async def run(step: Step) -> tuple[np.ndarray, list[np.ndarray]]:
            name = "decoder_first.onnx" if step.first else "decoder.onnx"
            feeds = {"z": np.ascontiguousarray(step.frames)}
            feeds.update({f"cache_in_{i}": c for i, c in enumerate(step.caches)})
            outputs = self._run(name, feeds)
            return outputs[0], list(outputs[1 : 1 + caches_count])

        async def frames() -> int:
            made = 0
            total = self.manifest.video.frames(z.shape[2])
            async for piece in walk(z, self.chunks, total, run):
                made += piece.shape[2]
            return made

        return asyncio.run(frames())


def raw_point(decoder: RawDecoder, z: np.ndarray, clients: int, seconds: float) -> Point:
    """The raw engine's frames/s with `clients` threads each decoding clips back to back for
    `seconds` (each finishes the clip it has started; every clip counts)."""
    done: list[tuple[int, float]] = []
    stop = time.perf_counter() + seconds

    def client() -> None:
        while True:
            started = time.perf_counter()
            made = decoder.decode(z)
            done.append((made, time.perf_counter() - started))
            if time.perf_counter() > stop:
                return

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    rate = sum(made for made, _ in done) / elapsed
    p50 = float(np.percentile([s for _, s in done], 50)) * 1000
    name = decoder.manifest.name
    point = Point(name, decoder.manifest.video.frames(z.shape[2]),
                  f"raw {decoder.engine}", clients, rate, p50)  # fmt: skip
    print(_line(point), flush=True)
    return point


def diffusers_point(key: str, frames: int, size: int, seconds: float) -> Point:
    """diffusers' PyTorch decode in this process (torch on every core), one clip at a time."""
    import diffusers
    import torch

    torch.set_num_threads(machine.cores())
    class_name, _, _ = MODELS[key]
    folder = str(WORK / "diffusers" / key)
    vae = getattr(diffusers, class_name).from_pretrained(folder, low_cpu_mem_usage=False).eval()
    manifest = manifest_of(WORK / "models", key)
    z = torch.from_numpy(latents(manifest, frames, size))
    times = []
    with torch.inference_mode():
        vae.decode(z)
        started = time.perf_counter()
        while time.perf_counter() - started < seconds or not times:
            t0 = time.perf_counter()
            vae.decode(z)
            times.append(time.perf_counter() - t0)
    rate = frames * len(times) / sum(times)
    point = Point(key, frames, "diffusers pytorch", 1, rate, float(np.median(times)) * 1000)
    print(_line(point), flush=True)
    return point


def start_service(models_dir: Path, key: str, env: dict[str, str]) -> tuple[ServerProcess, str]:
    """`vae serve` on the model, ready."""
    port = free_port()
    settings = {
        "VAE_MODELS_DIR": str(models_dir),
        "VAE_DATA_DIR": str(WORK / "data"),
        "VAE_DEFAULT_MODEL": key,
        "VAE_RELOAD_INTERVAL_S": "0",
        "VAE_MAX_BODY_BYTES": str(256 * 1024 * 1024),
        "VAE_REQUEST_TIMEOUT_S": "900",
        "VAE_MAX_REQUEST_TIMEOUT_S": "3600",
        **env,
    }
    command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
    log = WORK / "logs" / f"serve-{key}-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(f"service {key}", command, settings, ROOT, log)
    url = f"http://127.0.0.1:{port}"
    server.wait_ready(url + "/v2/health/ready", timeout=900)
    return server, url


def _body(z: np.ndarray, name: str) -> Path:
    path = WORK / "bodies" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(z.tobytes())
    return path


def _target(url: str, key: str, z: np.ndarray, fmt: str) -> str:
    shape = "&".join(f"shape={n}" for n in z.shape)
    return f"{url}/decode?model={key}&{shape}&dtype=float32&format={fmt}"


def _post(url: str, body: bytes) -> tuple[int, bytes]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        url, body, {"content-type": "application/octet-stream"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=3600) as reply:
            return int(reply.status), bytes(reply.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())


def throughput(
    key: str,
    models_dir: Path,
    frames: int,
    size: int,
    clients: list[int],
    seconds: float,
    engines: dict[str, Any],
) -> list[Point]:
    """At each concurrency, alternating so that a drift of the machine hits all alike: the raw
    engine the service chose for its decoder (and ONNX Runtime fp32), then the service on its
    defaults giving raw frames and mp4 (a window long enough for every client to finish
    CLIPS_A_CLIENT clips at one client's pace). The version's `GET /models/{name}` goes in
    `engines`."""
    import urllib.request

    manifest = manifest_of(models_dir, key)
    z = latents(manifest, frames, size)
    body = _body(z, f"{key}-{frames}-{size}.bin")
    server, url = start_service(models_dir, key, {})
    points = []
    try:
        with urllib.request.urlopen(f"{url}/models/{key}", timeout=60) as answer:
            engines[key] = json.loads(answer.read())
        chosen = decoder_engine(engines[key])
        print(f"  the service's decoder runs on {chosen}", flush=True)
        decoders = [
            RawDecoder(models_dir / key / "1", manifest, machine.cores(), engine)
            for engine in dict.fromkeys([chosen, "onnxruntime fp32"])
        ]
        for decoder in decoders:
            decoder.decode(z)  # warm (compiled for these shapes)
        for fmt in ("raw", "mp4"):
            status, reply = _post(_target(url, key, z, fmt), body.read_bytes())  # warm
            if status != 200:
                raise RuntimeError(f"the service answered {status}: {reply[:300]!r}")
        clip_seconds = 0.0  # one client's median clip on the service
        for count in clients:
            points += [raw_point(decoder, z, count, seconds) for decoder in decoders]
            span = max(seconds, CLIPS_A_CLIENT * count * clip_seconds)
            for fmt in ("raw", "mp4"):
                load = run_wrk(
                    _target(url, key, z, fmt), body, count, span, timeout_s=round(span) + 600,
                    script=RAW_LUA, script_args=("application/octet-stream",),
                )  # fmt: skip
                point = Point(
                    key, frames, f"service {fmt}", count, load.rps * frames, load.p50_ms,
                    load.errors,
                )  # fmt: skip
                points.append(point)
                print(_line(point), flush=True)
                clip_seconds = clip_seconds or load.p50_ms / 1000
    finally:
        server.stop()
    return points


def peak_rss(key: str, models_dir: Path, counts: list[int], size: int) -> list[dict[str, Any]]:
    """VmHWM of a fresh service after one decode of each clip length, to mp4 and to raw frames."""
    manifest = manifest_of(models_dir, key)
    rows = []
    for fmt in ("mp4", "raw"):
        for frames in counts:
            server, url = start_service(models_dir, key, {})
            try:
                idle = status_mib(server.process.pid, "VmRSS") or float("nan")
                z = latents(manifest, frames, size)
                started = time.perf_counter()
                status, reply = _post(_target(url, key, z, fmt), z.tobytes())
                seconds = time.perf_counter() - started
                peak = status_mib(server.process.pid, "VmHWM") or float("nan")
            finally:
                server.stop()
            row = {"model": key, "frames": frames, "size": size, "format": fmt, "status": status,
                   "bytes": len(reply), "idle_rss_mib": round(idle), "peak_rss_mib": round(peak),
                   "seconds": round(seconds, 2)}  # fmt: skip
            rows.append(row)
            print(f"  RSS {key} {frames:>3} frames {size}px {fmt}: peak {peak:,.0f} MiB "
                  f"(idle {idle:,.0f}), {seconds:.1f} s, {status}", flush=True)  # fmt: skip
    return rows


def decoder_engine(model: dict[str, Any]) -> str:
    """The engine and precision the service chose for the default version's decoder."""
    version = next(v for v in model["versions"] if v.get("engine"))
    decoder = version["engine"]["decoder"]
    return f"{decoder['engine']} {decoder['precision']}"


def _line(point: Point) -> str:
    return (f"  {point.model:<8} {point.frames:>3} frames {point.system:<22} c={point.clients:<2} "
            f"{point.frames_per_s:8.2f} frames/s  p50 {point.p50_ms:9.1f} ms  "
            f"errors {point.errors}")  # fmt: skip


def ratios(points: list[Point]) -> dict[str, float]:
    """The service's frames/s against the raw engine's and diffusers' at each concurrency."""
    out: dict[str, float] = {}
    for point in points:
        if not point.system.startswith("service"):
            continue
        for peer in points:
            same = peer.model == point.model and peer.frames == point.frames
            if same and peer.system.startswith("raw") and peer.clients == point.clients:
                key = f"{point.model} {point.system} / {peer.system}, c={point.clients}"
                out[key] = round(point.frames_per_s / peer.frames_per_s, 3)
            if same and peer.system == "diffusers pytorch" and point.clients == 1:
                key = f"{point.model} {point.system} c=1 / diffusers pytorch"
                out[key] = round(point.frames_per_s / peer.frames_per_s, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark and writes bench/results/video-<time>.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--size", type=int, default=128, help="frame height and width, pixels")
    parser.add_argument("--frames", type=int, default=17, help="a throughput clip's frames")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rss-frames", type=int, nargs="*", default=[9, 33, 81])
    parser.add_argument("--quick", action="store_true", help="wan only, 10 s windows, no RSS")
    parser.add_argument("--rss-only", action="store_true", help="the memory part alone")
    args = parser.parse_args(argv)
    if args.quick:
        args.models, args.seconds, args.rss_frames = ["wan"], 10.0, []
    ensure_wrk()
    started = datetime.now(UTC)
    report: dict[str, Any] = {"machine": machine.describe(), "started": started.isoformat(),
                              "size": args.size, "frames": args.frames, "models": {}}  # fmt: skip
    points: list[Point] = []
    engines: dict[str, Any] = {}
    rss: list[dict[str, Any]] = []
    for key in args.models:
        models_dir = prepare(key)
        print(f"{key}: {MODELS[key][2]}", flush=True)
        report["models"][key] = MODELS[key][2]
        if not args.rss_only:
            points += throughput(
                key, models_dir, args.frames, args.size, args.clients, args.seconds, engines
            )
            points.append(diffusers_point(key, args.frames, args.size, args.seconds))
        if args.rss_frames:
            rss += peak_rss(key, models_dir, args.rss_frames, args.size)
    report["points"] = [asdict(p) for p in points]
    report["ratios"] = ratios(points)
    report["rss"] = rss
    report["engines"] = engines
    for name, value in report["ratios"].items():
        print(f"  {name}: {value}x", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"video-{started.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
