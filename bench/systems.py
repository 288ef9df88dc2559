"""The systems under test, each a server process the bench starts, drives and stops:
the service with batching on and off, and the peers (Triton, BentoML, LitServe)."""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.models import ROOT, BenchModel
from bench.peers.common import STATS_ENV, read_stats
from bench.procs import ServerProcess, free_port, http_get, vae_command


@dataclass(frozen=True)
class Knobs:
    """Settings every system gets alike."""

    threads: int
    max_batch_size: int
    max_delay_ms: float
    sample_n: int
    nice: int = 0


@dataclass(frozen=True)
class Target:
    """Where and what to POST for one route: JSON `bodies` (cycled), or one binary `raw` body
    sent with `content_type` and the `header` (name, value) it needs."""

    url: str
    bodies: list[str]
    rows_per_request: int
    raw: bytes | None = None
    content_type: str = "application/json"
    header: tuple[str, str] | None = None


OIP_HEADER_LENGTH = "Inference-Header-Content-Length"


def oip_target(url: str, model: BenchModel) -> Target:
    """One latent [1,D] to a decoder over the Open Inference Protocol with the binary tensor
    extension both ways: input `z` FP32 as binary data after the JSON header, output `images`
    (base64 PNGs) as binary data. Every system gets this very body."""
    z = latent_rows(model, 1)[0]
    header = json.dumps(
        {
            "inputs": [
                {"name": "z", "shape": [1, model.latent_dim], "datatype": "FP32",
                 "parameters": {"binary_data_size": z.nbytes}}
            ],
            "outputs": [{"name": "images", "parameters": {"binary_data": True}}],
        },
        separators=(",", ":"),
    ).encode()  # fmt: skip
    return Target(
        url,
        [],
        1,
        raw=header + z.tobytes(),
        content_type="application/octet-stream",
        header=(OIP_HEADER_LENGTH, str(len(header))),
    )


def oip_images(answer: bytes, header_length: int) -> list[str]:
    """The base64 PNGs of an OIP answer's binary BYTES output `images` (each element: its length,
    4 bytes little-endian, then its bytes)."""
    header = json.loads(answer[:header_length])
    offset, texts = header_length, []
    for output in header["outputs"]:
        size = int(output["parameters"]["binary_data_size"])
        if output["name"] == "images":
            blob, at = answer[offset : offset + size], 0
            while at < len(blob):
                length = int.from_bytes(blob[at : at + 4], "little")
                texts.append(blob[at + 4 : at + 4 + length].decode())
                at += 4 + length
        offset += size
    return texts


def latent_rows(model: BenchModel, count: int = 64, seed: int = 0) -> list[np.ndarray]:
    """`count` single latents [1,D] drawn from the prior, the same for every system."""
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, model.latent_dim)).astype(np.float32) for _ in range(count)]


def _latents_body(z: np.ndarray) -> str:
    return json.dumps({"latents": np.round(z, 5).tolist()}, separators=(",", ":"))


class System(ABC):
    """A server under test."""

    name: str
    label: str
    is_peer: bool = False

    def __init__(self, knobs: Knobs, work: Path) -> None:
        self.knobs = knobs
        self.work = work
        self.port = 0
        self.server: ServerProcess | None = None

    @abstractmethod
    def launch(self, model: BenchModel) -> tuple[ServerProcess, str]:
        """Starts the server for `model`; returns it and the URL that answers 200 when ready."""

    @abstractmethod
    def target(self, route: str, model: BenchModel) -> Target | None:
        """The request for `route` ("decode" or "sample"); None when this system has no such route."""

    @abstractmethod
    def images(self, answer: bytes) -> list[str]:
        """The base64 PNGs in one answer (to check every system answers alike)."""

    @abstractmethod
    def batch_counters(self) -> tuple[float, float]:
        """Cumulative (model calls, rows) so far."""

    def start(self, model: BenchModel, timeout: float = 180.0) -> None:
        """Starts the server and waits until it is ready."""
        self.port = free_port()
        self.server, ready = self.launch(model)
        self.server.wait_ready(ready, timeout)
        self.server.prioritize(self.knobs.nice)

    def stop(self) -> None:
        """Stops the server (its whole process group)."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    def log(self, model: BenchModel) -> Path:
        """Where the server's output goes."""
        return self.work / "logs" / f"{self.name}-{model.key}.log"


class Service(System):
    """This service, `vae serve`, with micro-batching on or off."""

    def __init__(self, knobs: Knobs, work: Path, batching: bool, root: Path = ROOT) -> None:
        super().__init__(knobs, work)
        self.batching = batching
        self.root = root
        self.name = "service" if batching else "service-nobatch"
        self.label = "vae-service, batching on" if batching else "vae-service, batching off"
        if root != ROOT:
            self.label += f" ({root.name})"

    def launch(self, model: BenchModel) -> tuple[ServerProcess, str]:
        env = {
            "VAE_MODELS_DIR": str(model.models_dir),
            "VAE_DEFAULT_MODEL": model.name,
            "VAE_DATA_DIR": str(self.work / "data"),
            "VAE_BATCHING": "true" if self.batching else "false",
            "VAE_THREADS": str(self.knobs.threads),
            "VAE_MAX_BATCH_SIZE": str(self.knobs.max_batch_size),
            "VAE_MAX_DELAY_MS": str(self.knobs.max_delay_ms),
            "VAE_RELOAD_INTERVAL_S": "0",
        }
        # Run in self.root: another checkout (a candidate change) serves its own code.
        command = vae_command("serve", "--port", str(self.port))
        server = ServerProcess(self.name, command, env, self.root, self.log(model))
        return server, f"http://127.0.0.1:{self.port}/v2/health/ready"

    def target(self, route: str, model: BenchModel) -> Target | None:
        base = f"http://127.0.0.1:{self.port}"
        if route == "decode":
            bodies = [_latents_body(z) for z in latent_rows(model)]
            return Target(f"{base}/decode", bodies, 1)
        if route == "sample":
            return Target(
                f"{base}/sample", [json.dumps({"n": self.knobs.sample_n})], self.knobs.sample_n
            )
        if route == "oip":
            return oip_target(f"{base}/v2/models/{model.name}.decoder/infer", model)
        return None

    def images(self, answer: bytes) -> list[str]:
        return list(json.loads(answer)["images"])

    def batch_counters(self) -> tuple[float, float]:
        status, body = http_get(f"http://127.0.0.1:{self.port}/metrics")
        if status != 200:
            return 0.0, 0.0
        calls = rows = 0.0
        for line in body.decode().splitlines():
            match = re.match(r"vae_batch_size_(sum|count)\{([^}]*)\} (\S+)", line)
            if match and 'graph="decoder"' in match.group(2):
                if match.group(1) == "sum":
                    rows += float(match.group(3))
                else:
                    calls += float(match.group(3))
        return calls, rows


class Peer(System):
    """A peer framework in its own virtualenv; it counts its batches in a stats file."""

    is_peer = True

    def __init__(self, knobs: Knobs, work: Path, venv_bin: Path) -> None:
        super().__init__(knobs, work)
        self.venv_bin = venv_bin
        self.stats_file = work / f"{self.name}.stats"

    def env(self, model: BenchModel) -> dict[str, str]:
        """Environment every peer gets: where to count batches; `app` and `bench` importable."""
        self.stats_file.unlink(missing_ok=True)
        return {STATS_ENV: str(self.stats_file), "PYTHONPATH": str(ROOT)}

    def batch_counters(self) -> tuple[float, float]:
        calls, rows = read_stats(self.stats_file)
        return float(calls), float(rows)

    def launch_server(
        self, model: BenchModel, module: str, delay: list[str], ready_path: str
    ) -> tuple[ServerProcess, str]:
        """`python -m <module>` in the peer's virtualenv, with the options of
        `bench.peers.common.peer_arguments` and `delay`, the server's own batching-delay option."""
        command = [
            str(self.venv_bin / "python"),
            "-m",
            module,
            "--model",
            str(model.decoder),
            "--port",
            str(self.port),
            "--threads",
            str(self.knobs.threads),
            "--max-batch-size",
            str(self.knobs.max_batch_size),
            *delay,
        ]
        server = ServerProcess(self.name, command, self.env(model), ROOT, self.log(model))
        return server, f"http://127.0.0.1:{self.port}{ready_path}"

    def decode_bodies(self, model: BenchModel) -> list[str]:
        """{"latents": [[...]]}, as the service's /decode takes."""
        return [_latents_body(z) for z in latent_rows(model)]


class Triton(Peer):
    """NVIDIA Triton's dynamic batcher, through PyTriton."""

    name = "triton"
    label = "Triton (PyTriton), dynamic batcher"

    def launch(self, model: BenchModel) -> tuple[ServerProcess, str]:
        delay = ["--max-delay-us", str(int(self.knobs.max_delay_ms * 1000))]
        return self.launch_server(
            model, "bench.peers.triton_server", delay, "/v2/models/decoder/ready"
        )

    def target(self, route: str, model: BenchModel) -> Target | None:
        if route == "oip":
            return oip_target(f"http://127.0.0.1:{self.port}/v2/models/decoder/infer", model)
        if route != "decode":
            return None
        bodies = [
            json.dumps(
                {
                    "inputs": [
                        {
                            "name": "z",
                            "datatype": "FP32",
                            "shape": [1, model.latent_dim],
                            "data": np.round(z[0], 5).tolist(),
                        }
                    ]
                },
                separators=(",", ":"),
            )
            for z in latent_rows(model)
        ]
        return Target(f"http://127.0.0.1:{self.port}/v2/models/decoder/infer", bodies, 1)

    def images(self, answer: bytes) -> list[str]:
        return list(json.loads(answer)["outputs"][0]["data"])


class BentoML(Peer):
    """BentoML's adaptive batching."""

    name = "bentoml"
    label = "BentoML, adaptive batching"

    def launch(self, model: BenchModel) -> tuple[ServerProcess, str]:
        env = {
            **self.env(model),
            "BENCH_MODEL": str(model.decoder),
            "BENCH_THREADS": str(self.knobs.threads),
            "BENCH_MAX_BATCH_SIZE": str(self.knobs.max_batch_size),
        }
        command = [
            str(self.venv_bin / "bentoml"),
            "serve",
            "bench.peers.bentoml_service:Decoder",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        server = ServerProcess(self.name, command, env, ROOT, self.log(model))
        return server, f"http://127.0.0.1:{self.port}/readyz"

    def target(self, route: str, model: BenchModel) -> Target | None:
        if route != "decode":
            return None
        return Target(f"http://127.0.0.1:{self.port}/decode", self.decode_bodies(model), 1)

    def images(self, answer: bytes) -> list[str]:
        return list(json.loads(answer))


class LitServe(Peer):
    """LitServe's batching (max_batch_size, batch_timeout)."""

    name = "litserve"
    label = "LitServe, batching"

    def launch(self, model: BenchModel) -> tuple[ServerProcess, str]:
        delay = ["--batch-timeout", str(self.knobs.max_delay_ms / 1000.0)]
        return self.launch_server(model, "bench.peers.litserve_server", delay, "/health")

    def target(self, route: str, model: BenchModel) -> Target | None:
        if route != "decode":
            return None
        return Target(f"http://127.0.0.1:{self.port}/predict", self.decode_bodies(model), 1)

    def images(self, answer: bytes) -> list[str]:
        return list(json.loads(answer)["images"])


PEERS: dict[str, type[Peer]] = {"triton": Triton, "bentoml": BentoML, "litserve": LitServe}
SYSTEM_NAMES = ("service", "service-nobatch", *PEERS)
