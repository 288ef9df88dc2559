"""The deployment files, checked without a Docker engine by reading them: what no schema can tell
(service names, healthchecks, depends_on targets, scrape targets against the ports the services
listen on, every dashboard query against the metrics app/metrics.py defines). The checks that run
a tool (the compose specification, hadolint, promtool, the entrypoint) are in
tests/integration/test_deployment_tools.py."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from tests.support.deployment import (
    AWS_SETTINGS,
    COMPOSE,
    COMPOSE_GPU,
    COMPOSE_S3,
    DASHBOARD,
    DOCKER,
    DOCKERFILE,
    GATEWAY_CONFIG,
    GRAFANA_PROVISIONING,
    PROMETHEUS_CONFIG,
    MissingVariable,
    compose,
    dashboard,
    dashboard_queries,
    defined_metric_names,
    environment,
    healthcheck_command,
    interpolate,
    known_settings,
    load_yaml,
)
from tests.support.paths import ROOT

SERVICES = {"gateway", "api", "worker", "redis", "prometheus", "grafana"}
PROFILED = {"seaweedfs": ["s3"]}  # started only with --profile
ENV = {"VAE_ADMIN_TOKEN": "0123456789abcdef"}
API_PORT, WORKER_METRICS_PORT, PROMETHEUS_PORT = 8000, 9100, 9090


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return dict(compose(ENV)["services"])


# ---- hadolint's exceptions ---------------------------------------------------------------------


def test_every_hadolint_exception_says_why() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            reason = lines[number - 1].strip() if number else ""
            assert reason.startswith("#") and len(reason) > 20, (
                f"Dockerfile line {number + 1}: say why on the comment line above the ignore"
            )


# ---- the Dockerfile ------------------------------------------------------------------------


def stages() -> dict[str, list[str]]:
    """The Dockerfile's instructions (continuations joined) by stage name."""
    found: dict[str, list[str]] = {}
    current: list[str] = []
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if match:
            current = found.setdefault(match[1], [])
        current.append(line)
    return found


def chain(name: str) -> list[str]:
    """A stage's instructions with those of the stages it is built FROM."""
    all_stages = stages()
    parent = all_stages[name][0].split()[1]
    return (chain(parent) if parent in all_stages else []) + all_stages[name]


@pytest.mark.parametrize("target", ["api", "worker"])
def test_both_targets_run_as_a_non_root_user_with_a_healthcheck(target: str) -> None:
    instructions = stages()[target]
    users = [line.split()[1] for line in instructions if line.startswith("USER ")]
    assert users, f"{target}: no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"{target} runs as {users[-1]}"
    assert any(line.startswith("HEALTHCHECK ") for line in instructions), target
    assert any(line.startswith("ENTRYPOINT ") for line in instructions), target


def test_the_api_image_never_installs_torch() -> None:
    api = " ".join(chain("api"))
    assert "torch" not in api.lower()
    assert "torch" in " ".join(chain("worker"))


def test_the_worker_torch_matches_the_train_extra() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [
        r for r in pyproject["project"]["optional-dependencies"]["train"] if r.startswith("torch")
    ]
    match = re.search(r"ARG TORCH_VERSION=(\S+)", DOCKERFILE.read_text())
    assert match and pins == [f"torch=={match[1]}"], (pins, match)


def test_the_build_context_leaves_secrets_out() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*", "an allowlist: everything out, then what the images need"
    assert not [line for line in lines if line.startswith("!") and ".env" in line]
    assert "ARG VAE_ADMIN_TOKEN" not in DOCKERFILE.read_text()
    assert "VAE_ADMIN_TOKEN" not in " ".join(
        i for s in stages().values() for i in s if i.startswith("ENV")
    )


# ---- docker-compose.yml --------------------------------------------------------------------


def test_the_services_are_the_documented_ones(services: dict[str, Any]) -> None:
    assert {name for name, s in services.items() if "profiles" not in s} == SERVICES
    assert {name: s["profiles"] for name, s in services.items() if "profiles" in s} == PROFILED


def test_the_admin_token_comes_from_the_environment_and_is_required() -> None:
    raw = COMPOSE.read_text()
    assert re.search(r"VAE_ADMIN_TOKEN: \$\{VAE_ADMIN_TOKEN:\?[^}]*README", raw)
    with pytest.raises(MissingVariable, match="README"):
        compose({})


def test_every_service_has_a_healthcheck(services: dict[str, Any]) -> None:
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name} has no healthcheck"
        assert healthcheck_command(service), name


def test_depends_on_waits_for_healthy_services(services: dict[str, Any]) -> None:
    seen = 0
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for target, rule in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            assert rule.get("condition") == "service_healthy", f"{name} -> {target}"
            assert "healthcheck" in services[target], f"{target} can never be healthy"
            seen += 1
    assert seen >= 5
    assert {"redis"} <= set(services["api"]["depends_on"]) and "redis" in services["worker"][
        "depends_on"
    ]


def test_api_and_worker_scale(services: dict[str, Any]) -> None:
    for name in ("api", "worker"):
        service = services[name]
        assert "container_name" not in service, f"{name}: a fixed name cannot scale"
        assert "ports" not in service, f"{name}: a published port cannot scale (use expose)"
        assert "replicas" in service.get("deploy", {}), name
    assert services["api"]["command"][:2] == ["vae", "serve"]
    assert services["worker"]["command"][:2] == ["vae", "worker"]
    assert services["api"]["build"]["target"] == "api"
    assert services["worker"]["build"]["target"] == "worker"


def test_api_and_worker_share_the_data_volume_at_one_path(services: dict[str, Any]) -> None:
    api, worker = services["api"], services["worker"]
    assert api["volumes"] == worker["volumes"] == ["vae-data:/data"]
    api_env, worker_env = environment(api, {}), environment(worker, {})
    for key in ("VAE_MODELS_DIR", "VAE_DATA_DIR", "VAE_REDIS_URL"):
        assert api_env[key] == worker_env[key], key
    assert api_env["VAE_MODELS_DIR"].startswith("/data/") and api_env["VAE_DATA_DIR"] == "/data"
    assert api_env["VAE_REDIS_URL"].startswith("redis://redis:6379")
    assert api_env["VAE_HOST"] == "0.0.0.0" and api_env["VAE_ADMIN_TOKEN"] == ENV["VAE_ADMIN_TOKEN"]


def test_redis_keeps_the_queue_under_memory_pressure(services: dict[str, Any]) -> None:
    args = services["redis"]["command"]
    policy = args[args.index("--maxmemory-policy") + 1]
    assert policy.startswith("volatile-"), "allkeys-* evicts queued jobs"
    assert "--maxmemory" in args and args[args.index("--appendonly") + 1] == "yes"
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])


def test_the_ports_agree_everywhere(services: dict[str, Any]) -> None:
    """The api listens where Prometheus, the gateway and the healthchecks look, and so does
    the worker's metrics endpoint; the images say the same."""
    api, worker = environment(services["api"], {}), environment(services["worker"], {})
    assert int(api["VAE_PORT"]) == API_PORT and services["api"]["expose"] == [str(API_PORT)]
    assert int(worker["VAE_WORKER_METRICS_PORT"]) == WORKER_METRICS_PORT
    assert services["worker"]["expose"] == [str(WORKER_METRICS_PORT)]
    assert worker["VAE_WORKER_METRICS_HOST"] == "0.0.0.0"
    dockerfile = stages()
    assert (
        f"EXPOSE {API_PORT}" in dockerfile["api"]
        and f"EXPOSE {WORKER_METRICS_PORT}" in dockerfile["worker"]
    )
    healthcheck = (DOCKER / "healthcheck.py").read_text()
    assert f'"VAE_PORT", "{API_PORT}"' in healthcheck
    assert f'"VAE_WORKER_METRICS_PORT", "{WORKER_METRICS_PORT}"' in healthcheck
    gateway = GATEWAY_CONFIG.read_text()
    assert f"set $api_upstream api:{API_PORT};" in gateway
    assert services["gateway"]["ports"][0].endswith(f":{API_PORT}")
    assert "./docker/nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["gateway"]["volumes"]


def scrape_jobs() -> dict[str, dict[str, Any]]:
    return {job["job_name"]: job for job in load_yaml(PROMETHEUS_CONFIG)["scrape_configs"]}


def test_prometheus_scrapes_every_api_and_worker_replica(services: dict[str, Any]) -> None:
    jobs = scrape_jobs()
    for job, service, port in (("api", "api", API_PORT), ("worker", "worker", WORKER_METRICS_PORT)):
        (dns,) = jobs[job]["dns_sd_configs"]
        assert dns["names"] == [service] and service in services
        assert dns["type"] == "A" and dns["port"] == port, f"{job} scraped at {dns['port']}"
        assert jobs[job].get("metrics_path", "/metrics") == "/metrics"
    volumes = services["prometheus"]["volumes"]
    assert "./docker/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in volumes
    assert "--config.file=/etc/prometheus/prometheus.yml" in services["prometheus"]["command"]


def test_the_mounted_files_exist(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts a missing {source}"


# ---- Grafana -------------------------------------------------------------------------------


def test_grafana_is_provisioned_with_the_prometheus_of_the_compose_file(
    services: dict[str, Any],
) -> None:
    (source,) = load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert (
        source["type"] == "prometheus" and source["url"] == f"http://prometheus:{PROMETHEUS_PORT}"
    )
    assert services["prometheus"]["ports"] == [f"127.0.0.1:{PROMETHEUS_PORT}:{PROMETHEUS_PORT}"]
    (provider,) = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "vae-service.yml")["providers"]
    mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    assert mounts["./docker/grafana/dashboards"] == provider["options"]["path"]
    assert mounts["./docker/grafana/provisioning"] == "/etc/grafana/provisioning"
    home = environment(services["grafana"], {})["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"
    board = dashboard()
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == source["uid"], panel["title"]


def test_every_dashboard_query_names_a_metric_that_app_metrics_defines() -> None:
    defined = defined_metric_names()
    queries = dashboard_queries()
    assert queries
    for title, expr in queries:
        named = set(re.findall(r"\bvae_[a-zA-Z0-9_:]*", expr))
        assert named, f"{title!r} names no vae_ metric: {expr}"
        assert named <= defined, f"{title!r} names undefined {named - defined}"
    used = {name for _, expr in queries for name in re.findall(r"\bvae_[a-zA-Z0-9_:]*", expr)}
    wanted = {
        "vae_http_requests_total",  # request rate by route
        "vae_http_request_duration_seconds_bucket",  # latency by route
        "vae_batch_size_bucket",  # batch sizes
        "vae_cache_hits_total", "vae_cache_misses_total",  # cache hit ratio
        "vae_pending_samples", "vae_jobs",  # queue depths: batches and jobs
        "vae_worker_jobs_total", "vae_training_progress_ratio",  # jobs and training progress
    }  # fmt: skip
    assert wanted <= used, wanted - used


def test_the_dashboard_panels_fit_the_grid() -> None:
    panels = dashboard()["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


# ---- the GPU override ----------------------------------------------------------------------


def test_the_gpu_override_switches_the_build_and_reserves_the_gpu(
    services: dict[str, Any],
) -> None:
    override = compose(ENV, COMPOSE_GPU)["services"]
    assert set(override) == {"api", "worker"} and set(override) <= set(services)
    for name, service in override.items():
        assert service["build"]["args"]["ACCELERATOR"] == "cuda", name
        assert service["image"] != services[name]["image"], "CUDA images get tags of their own"
        (device,) = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"], name
    dockerfile = DOCKERFILE.read_text()
    assert dockerfile.count("ARG ACCELERATOR=cpu") == 2  # the api's and the worker's deps stages
    assert "whl/${flavour}" in dockerfile


def test_interpolation_follows_compose() -> None:
    env = {"SET": "x", "EMPTY": ""}
    assert (
        interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} $$SET $SET", env)
        == "x d  d $SET x"
    )
    assert interpolate("${SET:+y}${UNSET:+y}", env) == "y"
    with pytest.raises(MissingVariable, match="need it"):
        interpolate("${EMPTY:?need it}", env)


# ---- the object-store profile (docker-compose.s3.yml) --------------------------------------

S3_ENV = {**ENV, "AWS_ACCESS_KEY_ID": "vae-test", "AWS_SECRET_ACCESS_KEY": "0123456789abcdef"}


def flag(args: list[str], name: str) -> str:
    (value,) = [a.split("=", 1)[1] for a in args if a.startswith(f"-{name}=")]
    return value


def test_the_s3_override_points_api_and_worker_at_the_profile_store(
    services: dict[str, Any],
) -> None:
    store = services["seaweedfs"]
    args = [str(a) for a in store["command"]]
    assert args[0] == "mini" and store["image"].startswith("chrislusf/seaweedfs:")
    assert store["image"].split(":")[1][0].isdigit(), "a pinned release, not latest"
    s3_port, bucket = flag(args, "s3.port"), flag(args, "bucket")
    assert store["ports"] == [f"127.0.0.1:{s3_port}:{s3_port}"], "pinned, on loopback only"
    assert str(s3_port) in store["healthcheck"]["test"][-1]

    override = compose(S3_ENV, COMPOSE_S3)["services"]
    assert set(override) == {"seaweedfs", "api", "worker"}
    api, worker = environment(override["api"], {}), environment(override["worker"], {})
    for key in ("VAE_MODELS_DIR", "VAE_DATA_DIR", "VAE_S3_ENDPOINT_URL", *AWS_SETTINGS):
        assert api[key] == worker[key], key
    assert api["VAE_MODELS_DIR"] == f"s3://{bucket}/models"
    assert api["VAE_DATA_DIR"] == f"s3://{bucket}/data"
    assert api["VAE_S3_ENDPOINT_URL"] == f"http://seaweedfs:{s3_port}"
    # The cache is each replica's own: not on the volume the replicas share.
    assert not api["VAE_MODELS_CACHE_DIR"].startswith("/data")
    for name in ("api", "worker"):
        assert override[name]["depends_on"]["seaweedfs"]["condition"] == "service_healthy"
        assert {k for k in environment(override[name], {}) if k.startswith("VAE_")} <= (
            known_settings()
        ), name
    # The store and its clients share the one identity, which .env must give.
    store_env = environment(override["seaweedfs"], {})
    assert {k: store_env[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")} == {
        k: api[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    with pytest.raises(MissingVariable, match="README"):
        compose(ENV, COMPOSE_S3)
    for name, service in services.items():  # no credentials in the file every setup uses
        assert not [k for k in environment(service, {}) if k.startswith("AWS_")], name
