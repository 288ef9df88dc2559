"""The processes `docker compose up` runs, run here as local processes on loopback: redis-server,
the api and the worker with the commands and environments docker-compose.yml gives them (through
the images' entrypoint, which seeds the model volume), the gateway (nginx) and Prometheus when
they are installed. Then a dataset is uploaded, a model trained through POST /jobs and sampled,
and the api's and the worker's metrics scraped, by hand and by Prometheus.

What is rewritten, and only that: service names become 127.0.0.1, container ports become free
loopback ports, /data becomes a temporary directory, 0.0.0.0 becomes 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.deployment import (
    DOCKER,
    GATEWAY_CONFIG,
    PROMETHEUS_CONFIG,
    command,
    compose,
    dashboard_queries,
    environment,
    healthcheck_command,
    load_yaml,
)
from tests.support.processes import free_port, wait_until
from tests.support.synthetic import mnist_style_zip

TOKEN = "compose-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TINY = {"epochs": 2, "eval_k": 10, "hidden": [64], "latent_dim": 4}
VENV_BIN = Path(sys.executable).parent
IMAGE_PATHS = {"/data": "data", "/prometheus": "prometheus-data"}  # container path -> tmp subdir


@dataclass
class Stack:
    """The running processes and where they listen."""

    root: Path
    ports: dict[tuple[str, int], int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    envs: dict[str, dict[str, str]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def url(self, service: str, port: int) -> str:
        return f"http://127.0.0.1:{self.ports[(service, port)]}"

    @property
    def api(self) -> str:
        return self.url("api", 8000)

    @property
    def worker_metrics(self) -> str:
        return self.url("worker", 9100)

    def log(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")[-4000:]


class Rewriter:
    """Turns compose's view of the world into loopback and temporary directories."""

    def __init__(self, root: Path, ports: dict[tuple[str, int], int]) -> None:
        self.root = root
        self.ports = ports
        services = "|".join(sorted({service for service, _ in ports}))
        self.address = re.compile(rf"\b({services}):(\d+)\b")

    def value(self, service: str, key: str, value: str) -> str:
        if value == "0.0.0.0":
            return "127.0.0.1"
        if key.endswith("_PORT") and (service, int(value)) in self.ports:
            return str(self.ports[(service, int(value))])
        for inside, outside in IMAGE_PATHS.items():
            if value == inside or value.startswith(inside + "/"):
                return str(self.root / outside) + value[len(inside) :]
        return self.address.sub(
            lambda m: f"127.0.0.1:{self.ports.get((m[1], int(m[2])), int(m[2]))}", value
        )

    def environment(self, service: str, env: dict[str, str]) -> dict[str, str]:
        return {key: self.value(service, key, value) for key, value in env.items()}


def process_env(extra: dict[str, str]) -> dict[str, str]:
    """This machine's environment without any VAE_ setting of its own, the venv's tools first,
    and the service's environment on top."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VAE_", "PROMETHEUS_"))}
    base["PATH"] = f"{VENV_BIN}{os.pathsep}{base.get('PATH', '')}"
    return {**base, **extra}


def start(stack: Stack, name: str, args: list[str], env: dict[str, str]) -> None:
    """Starts a process in a session of its own (the worker forks work-horses into it)."""
    log = stack.root / f"{name}.log"
    stack.logs[name] = log
    with open(log, "wb") as out:
        stack.processes[name] = subprocess.Popen(
            args,
            cwd=stack.root,  # as in a container: no .env of the developer's
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's group, SIGKILL after a grace period."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def answers(stack: Stack, name: str, url: str) -> bool:
    process = stack.processes[name]
    if process.poll() is not None:
        raise AssertionError(f"{name} exited ({process.returncode}):\n{stack.log(name)}")
    return httpx.get(url, timeout=2).status_code == 200


def start_redis(stack: Stack, service: dict[str, Any]) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it)")
    args = command(service)
    assert args[0] == "redis-server"
    (stack.root / "redis-data").mkdir()
    port = stack.ports[("redis", 6379)]
    start(
        stack,
        "redis",
        [binary, *args[1:], "--port", str(port), "--bind", "127.0.0.1", "--dir", str(stack.root / "redis-data")],
        process_env({}),
    )  # fmt: skip

    def pong() -> bool:
        reply = subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, text=True, check=False
        )
        return reply.stdout.strip() == "PONG"

    wait_until(pong, 10, what="redis-server")


def start_gateway(stack: Stack) -> None:
    """nginx with the gateway's server block: the api's address made loopback, no Docker DNS."""
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    assert nginx is not None
    server = GATEWAY_CONFIG.read_text()
    server = re.sub(r"^resolver .*$", "", server, flags=re.MULTILINE)
    server = server.replace("api:8000", f"127.0.0.1:{stack.ports[('api', 8000)]}")
    server = server.replace("listen 8000;", f"listen 127.0.0.1:{stack.ports[('gateway', 8000)]};")
    home = stack.root / "nginx"
    home.mkdir()
    (home / "gateway.conf").write_text(server)
    temp = "\n".join(
        f"{kind}_temp_path {home}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )  # fmt: skip
    (home / "nginx.conf").write_text(
        f"daemon off;\nuser root root;\nworker_processes 1;\npid {home}/nginx.pid;\n"
        f"error_log {home}/error.log;\nevents {{}}\n"
        f"http {{\naccess_log off;\n{temp}\ninclude {home}/gateway.conf;\n}}\n"
    )
    start(
        stack, "gateway", [nginx, "-p", str(home), "-c", str(home / "nginx.conf")], process_env({})
    )
    url = stack.url("gateway", 8000)
    wait_until(lambda: answers(stack, "gateway", f"{url}/v2/health/ready"), 20, what="the gateway")


def have_nginx() -> bool:
    return shutil.which("nginx") is not None or Path("/usr/sbin/nginx").exists()


@pytest.fixture(scope="module")
def stack(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("compose")
    services = compose({"VAE_ADMIN_TOKEN": TOKEN})["services"]
    ports = {
        ("redis", 6379): free_port(),
        ("api", 8000): free_port(),
        ("worker", 9100): free_port(),
        ("gateway", 8000): free_port(),
        ("prometheus", 9090): free_port(),
    }
    stack = Stack(root, ports)
    rewrite = Rewriter(root, ports)
    try:
        start_redis(stack, services["redis"])
        for name in ("api", "worker"):
            env = rewrite.environment(name, environment(services[name], {}))
            if name == "api":  # the api image's ENV: the models it ships, for the entrypoint
                env["VAE_SHIPPED_MODELS"] = str(models_dir)
            stack.envs[name] = process_env(env)
            entrypoint = ["sh", str(DOCKER / "entrypoint.sh")]
            start(stack, name, [*entrypoint, *command(services[name])], stack.envs[name])
        wait_until(
            lambda: answers(stack, "api", f"{stack.api}/v2/health/ready"), 120, interval=0.3, what="the api"
        )  # fmt: skip
        wait_until(
            lambda: answers(stack, "worker", f"{stack.worker_metrics}/metrics"), 60, what="the worker"
        )  # fmt: skip
        if have_nginx():
            start_gateway(stack)
        yield stack
    finally:
        for process in reversed(list(stack.processes.values())):
            stop(process)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_api_seeds_the_shipped_model_and_every_healthcheck_passes(stack: Stack) -> None:
    services = compose({"VAE_ADMIN_TOKEN": TOKEN})["services"]
    models = Path(stack.envs["api"]["VAE_MODELS_DIR"])
    assert (models / ".seeded").is_file()
    assert (models / "mnist" / "DEFAULT").is_file()
    assert models.parent == stack.root / "data"
    for name in ("api", "worker"):
        args = healthcheck_command(services[name])
        assert args[0] == "vae-healthcheck"
        check = [sys.executable, str(DOCKER / "healthcheck.py"), *args[1:]]
        result = subprocess.run(
            check, env=stack.envs[name], capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 0, f"{name}: {result.stderr}"
    with httpx.Client(base_url=stack.api, timeout=30) as http:
        reply = http.post("/sample", json={"n": 2, "seed": 1})
        assert reply.status_code == 200, reply.text
        assert reply.json()["model"] == "mnist"
        assert http.get("/jobs").status_code == 200


def entry(stack: Stack) -> str:
    """Where users send requests: the gateway when nginx is here, else the api itself."""
    return stack.url("gateway", 8000) if "gateway" in stack.processes else stack.api


def test_train_and_serve_through_the_compose_processes(stack: Stack) -> None:
    with httpx.Client(base_url=entry(stack), timeout=60) as http:
        reply = http.put("/datasets/strokes", content=mnist_style_zip(500), headers=AUTH)
        assert reply.status_code in (200, 201), reply.text
        assert http.put("/datasets/x", content=b"1", headers={}).status_code == 401
        reply = http.post(
            "/jobs", json={"dataset": "strokes", "name": "strokes", "config": TINY}, headers=AUTH
        )
        assert reply.status_code == 202, reply.text
        job_id = reply.json()["id"]
        state: dict[str, Any] = {}

        def finished() -> bool:
            state.update(http.get(f"/jobs/{job_id}").json())
            return state["status"] not in {"queued", "running"}

        wait_until(finished, 240, interval=0.5, what="the training job")
        assert state["status"] == "succeeded", f"{state}\n{stack.log('worker')}"
        assert state["result"]["model"] == "strokes" and state["result"]["version"] == 1

        def sampled() -> bool:
            reply = http.post("/sample", json={"model": "strokes", "n": 3, "seed": 0})
            return reply.status_code == 200 and len(reply.json()["images"]) == 3

        wait_until(sampled, 30, interval=0.3, what="the new model to answer")
    assert (stack.root / "data" / "models" / "strokes" / "1" / "decoder.onnx").is_file()
    assert (stack.root / "data" / "datasets" / "strokes").is_dir()

    done = ("vae_worker_jobs_total", (("status", "succeeded"),))
    wait_until(lambda: scrape(stack.worker_metrics).get(done) == 1.0, 10, what="the worker's count")
    worker = scrape(stack.worker_metrics)
    assert worker[("vae_worker_busy", ())] == 0.0
    assert not [key for key in worker if key[0].startswith("vae_http_")], "the api's metrics"

    succeeded = ("vae_jobs", (("state", "succeeded"),))
    wait_until(lambda: scrape(stack.api).get(succeeded) == 1.0, 15, what="the api's job gauge")
    api = scrape(stack.api)
    posted = (
        "vae_http_requests_total",
        (("method", "POST"), ("route", "/jobs"), ("status", "202")),
    )
    assert api[posted] == 1.0


@pytest.mark.skipif(not have_nginx(), reason="nginx is not installed: the gateway is not run")
def test_the_gateway_passes_requests_and_uploads_to_the_api(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url("gateway", 8000), timeout=60) as http:
        assert http.get("/v2/health/ready").json()["ready"] is True
        big = mnist_style_zip(3000, seed=1)
        reply = http.put("/datasets/bigger", content=big, headers=AUTH)
        assert reply.status_code in (200, 201), reply.text
        assert http.get("/datasets/bigger").json()["name"] == "bigger"
        missing = http.post("/sample", json={"model": "nope", "n": 1})
        assert missing.status_code == 404 and "message" in missing.json()


def prometheus_config(stack: Stack) -> Path:
    """docker/prometheus.yml with each DNS-discovered service turned into its loopback port."""
    config = load_yaml(PROMETHEUS_CONFIG)
    for job in config["scrape_configs"]:
        targets: list[str] = []
        for dns in job.pop("dns_sd_configs", []):
            targets += [f"127.0.0.1:{stack.ports[(name, dns['port'])]}" for name in dns["names"]]
        for static in job.pop("static_configs", []):
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                service = "prometheus" if host == "localhost" else host
                targets.append(f"127.0.0.1:{stack.ports[(service, int(port))]}")
        job["static_configs"] = [{"targets": targets}]
    path = stack.root / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.skipif(
    shutil.which("prometheus") is None,
    reason="prometheus is not installed (apt-get install prometheus): its scrape is not run",
)
def test_prometheus_scrapes_the_api_and_the_worker(stack: Stack) -> None:
    service = compose({"VAE_ADMIN_TOKEN": TOKEN})["services"]["prometheus"]
    config = prometheus_config(stack)
    args: list[str] = []
    for flag in command(service):
        name, _, value = flag.partition("=")
        if name == "--config.file":
            value = str(config)
        elif value.startswith("/"):
            value = Rewriter(stack.root, stack.ports).value("prometheus", name, value)
        args.append(f"{name}={value}" if value else name)
    port = stack.ports[("prometheus", 9090)]
    start(
        stack,
        "prometheus",
        ["prometheus", *args, f"--web.listen-address=127.0.0.1:{port}"],
        process_env({}),
    )
    base = f"http://127.0.0.1:{port}"
    wait_until(lambda: answers(stack, "prometheus", f"{base}/-/ready"), 30, what="prometheus")

    def all_up() -> bool:
        targets = httpx.get(f"{base}/api/v1/targets", timeout=5).json()["data"]["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return health == {"api": "up", "worker": "up", "prometheus": "up"}

    wait_until(all_up, 60, interval=1, what="every scrape target to be up")

    def query(expr: str, panel: str = "") -> list[dict[str, Any]]:
        reply = httpx.get(f"{base}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert reply["status"] == "success", f"{panel} {expr}: {reply}"
        return list(reply["data"]["result"])

    assert {r["metric"]["job"] for r in query("vae_worker_busy")} == {"worker"}
    assert {r["metric"]["job"] for r in query("vae_http_requests_total")} == {"api"}
    for title, expr in dashboard_queries():  # Prometheus itself parses every panel's query
        query(expr.replace("$__rate_interval", "1m"), panel=title)
