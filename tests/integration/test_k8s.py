"""The Kubernetes deployment (deploy/k8s), checked without a cluster: both overlays rendered by
`kubectl kustomize`, every built-in kind validated strictly by kubernetes-validate against the
Kubernetes API schemas, KEDA's ScaledObject checked here against KEDA's documented fields, and
what no schema can tell: probes on routes the app serves, the queue KEDA watches being the one RQ
fills, every setting one the app reads, GPUs on the GPU overlay, nothing running as root."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.support.deployment import AWS_SETTINGS, COMPOSE, K8S, compose, known_settings, load_yaml
from tests.support.paths import ROOT

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None, reason="kubectl is not installed: the kustomize overlays cannot be rendered"
)
OVERLAYS = ("cpu", "gpu")
NAMESPACE = "vae-service"
API_UID = 10001  # the Dockerfile's USER
SECRET_KEYS = {"VAE_ADMIN_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
KUBERNETES_VALIDATE = Path(sys.executable).parent / "kubernetes-validate"


@cache
def rendered_text(overlay: str) -> str:
    result = subprocess.run(
        [str(KUBECTL), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def rendered(overlay: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered_text(overlay)) if doc]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name)]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def pod(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return dict(one(docs, "Deployment", name)["spec"]["template"])


def container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (only,) = pod(docs, name)["spec"]["containers"]
    return dict(only)


def settings(docs: list[dict[str, Any]]) -> dict[str, str]:
    return dict(one(docs, "ConfigMap", "vae-settings")["data"])


# ---- rendering and schemas -----------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlay_renders_and_passes_kubernetes_validate_strict(
    overlay: str, tmp_path: Path
) -> None:
    if not KUBERNETES_VALIDATE.exists():
        pytest.fail("kubernetes-validate is not in the venv: pip install -e '.[dev]'")
    manifest = tmp_path / f"{overlay}.yaml"
    manifest.write_text(rendered_text(overlay))
    result = subprocess.run(
        [str(KUBERNETES_VALIDATE), "--strict", str(manifest)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    # kubernetes-validate has schemas for the built-in kinds only: a custom resource gets a
    # WARN ("Couldn't find schema") and exit 0. Only KEDA's ScaledObject may go that way; it is
    # checked against KEDA's documented fields below.
    passed = set(re.findall(r"passed for resource (\S+) against", result.stdout))
    unknown = set(
        re.findall(r"Couldn't find schema for kind (\S+) with api version", result.stdout)
    )
    docs = rendered(overlay)
    expected = {f"{d['kind'].lower()}/{d['metadata']['name']}" for d in docs}
    assert unknown == {"ScaledObject"}, result.stdout
    assert passed == {e for e in expected if not e.startswith("scaledobject/")}, result.stdout
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    assert {"ConfigMap", "Secret", "ScaledObject"} <= kinds


def test_strict_validation_rejects_a_misspelt_field() -> None:
    """The control: --strict does catch what a plain apply would silently drop."""
    from kubernetes_validate import utils

    deployment = one(rendered("cpu"), "Deployment", "api")
    version = utils.latest_version()
    utils.validate(deployment, version, strict=True)
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(utils.ValidationError):
        utils.validate(deployment, version, strict=True)


def test_every_resource_lands_in_the_namespace() -> None:
    docs = rendered("cpu")
    namespace = one(docs, "Namespace", NAMESPACE)
    for doc in docs:
        if doc is not namespace:
            assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


# ---- KEDA ----------------------------------------------------------------------------------

# keda.sh/v1alpha1 ScaledObject, as KEDA documents it (concepts/scaling-deployments and the redis
# lists scaler); kubernetes-validate has no schema for it.
SCALED_OBJECT_SPEC = {
    "scaleTargetRef", "pollingInterval", "cooldownPeriod", "initialCooldownPeriod",
    "idleReplicaCount", "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
}  # fmt: skip
SCALE_TARGET_REF = {"apiVersion", "kind", "name", "envSourceContainerName"}
ADVANCED = {"restoreToOriginalReplicaCount", "horizontalPodAutoscalerConfig", "scalingModifiers"}
TRIGGER = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
REDIS_METADATA = {
    "address", "addressFromEnv", "host", "hostFromEnv", "port", "portFromEnv",
    "username", "usernameFromEnv", "password", "passwordFromEnv", "databaseIndex",
    "enableTLS", "unsafeSsl", "listName", "listLength", "activationListLength",
}  # fmt: skip


def test_the_scaled_object_has_kedas_documented_shape() -> None:
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        scaled = one(docs, "ScaledObject", "worker")
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        spec = scaled["spec"]
        assert set(spec) <= SCALED_OBJECT_SPEC, set(spec) - SCALED_OBJECT_SPEC
        target = spec["scaleTargetRef"]
        assert set(target) <= SCALE_TARGET_REF and target.get("kind", "Deployment") == "Deployment"
        assert one(docs, "Deployment", target["name"]) is not None
        assert "replicas" not in one(docs, "Deployment", "worker")["spec"], "KEDA owns the count"
        assert set(spec.get("advanced", {})) <= ADVANCED
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert set(behavior) <= {"scaleUp", "scaleDown"}
        for key in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
            assert isinstance(spec[key], int), key
        # At least one worker: the list counts queued jobs only, so with none queued a lone
        # worker busy training would otherwise be scaled to zero under its job.
        assert 1 <= spec["minReplicaCount"] < spec["maxReplicaCount"]
        (trigger,) = spec["triggers"]
        assert set(trigger) <= TRIGGER and trigger["type"] == "redis"
        metadata = trigger["metadata"]
        assert set(metadata) <= REDIS_METADATA, set(metadata) - REDIS_METADATA
        assert {"listName", "listLength"} <= set(metadata), "the redis scaler's required fields"
        assert all(isinstance(v, str) for v in metadata.values()), "KEDA metadata is strings"
        assert int(metadata["listLength"]) >= 1


def test_keda_watches_the_queue_the_app_fills() -> None:
    from rq import Queue

    from app.jobs.rq_backend import QUEUE_NAME

    docs = rendered("cpu")
    metadata = one(docs, "ScaledObject", "worker")["spec"]["triggers"][0]["metadata"]
    assert metadata["listName"] == Queue.redis_queue_namespace_prefix + QUEUE_NAME
    assert metadata["listName"] == f"rq:queue:{QUEUE_NAME}"
    # The Redis of VAE_REDIS_URL, reached from KEDA's namespace by its full DNS name.
    redis_url = urlsplit(settings(docs)["VAE_REDIS_URL"])
    service = one(docs, "Service", "redis")
    (port,) = service["spec"]["ports"]
    assert redis_url.hostname == service["metadata"]["name"] and redis_url.port == port["port"]
    host, _, address_port = metadata["address"].rpartition(":")
    assert host == f"{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    assert int(address_port) == port["port"]
    assert metadata.get("databaseIndex", "0") == (redis_url.path.strip("/") or "0")


# ---- what the pods run ---------------------------------------------------------------------


def test_the_api_probes_and_scrape_path_are_routes_the_app_serves() -> None:
    from app.api import health, observability

    routes = {r.path for r in [*health.router.routes, *observability.router.routes]}  # type: ignore[attr-defined]
    docs = rendered("cpu")
    api = container(docs, "api")
    (port,) = api["ports"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        if probe in api:
            get = api[probe]["httpGet"]
            assert get["path"] in routes, f"{probe} on {get['path']}, which the app does not serve"
            assert get["port"] in (port["name"], port["containerPort"])
    assert int(settings(docs)["VAE_PORT"]) == port["containerPort"] == 8000
    annotations = pod(docs, "api")["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port["containerPort"]
    assert annotations["prometheus.io/path"] in routes
    service = one(docs, "Service", "api")
    assert service["spec"]["ports"][0]["targetPort"] in (port["name"], port["containerPort"])
    assert api["args"] == ["vae", "serve"] and "command" not in api, "keep the image's entrypoint"


def test_the_worker_runs_vae_worker_with_metrics_where_prometheus_looks() -> None:
    docs = rendered("cpu")
    worker = container(docs, "worker")
    assert worker["args"] == ["vae", "worker"] and "command" not in worker
    env = {e["name"]: e["value"] for e in worker["env"]}
    (port,) = worker["ports"]
    assert int(env["VAE_WORKER_METRICS_PORT"]) == port["containerPort"] == 9100
    assert env["VAE_WORKER_METRICS_HOST"] == "0.0.0.0"
    annotations = pod(docs, "worker")["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == port["containerPort"]
    assert annotations["prometheus.io/path"] == worker["livenessProbe"]["httpGet"]["path"]


def env_names(docs: list[dict[str, Any]]) -> set[str]:
    names = set(settings(docs)) | set(one(docs, "Secret", "vae-secrets")["data"])
    for doc in docs:
        if doc["kind"] == "Deployment":
            for c in doc["spec"]["template"]["spec"]["containers"]:
                names |= {e["name"] for e in c.get("env", [])}
    return names


def test_every_setting_is_one_the_app_reads() -> None:
    for overlay in OVERLAYS:
        names = env_names(rendered(overlay))
        vae = {n for n in names if n.startswith("VAE_")}
        assert vae <= known_settings(), f"{overlay}: unknown {vae - known_settings()}"
        assert {n for n in names if n.startswith("AWS_")} == AWS_SETTINGS


def test_the_settings_put_models_and_datasets_in_the_object_store() -> None:
    docs = rendered("cpu")
    values = settings(docs)
    models, data = urlsplit(values["VAE_MODELS_DIR"]), urlsplit(values["VAE_DATA_DIR"])
    assert models.scheme == data.scheme == "s3" and models.netloc == data.netloc
    assert models.path != data.path
    assert urlsplit(values["VAE_S3_ENDPOINT_URL"]).scheme in ("http", "https")
    assert values["VAE_HOST"] == "0.0.0.0"
    # The cache is the api's emptyDir; VAE_THREADS its CPU limit.
    api = container(docs, "api")
    mounts = {m["mountPath"] for m in api["volumeMounts"]}
    assert values["VAE_MODELS_CACHE_DIR"] in mounts
    assert int(values["VAE_THREADS"]) == int(api["resources"]["limits"]["cpu"])
    for name in ("api", "worker"):
        refs = {
            next(iter(ref.values()))["name"].rsplit("-", 1)[0]
            for ref in container(docs, name)["envFrom"]
        }
        assert refs == {"vae-settings", "vae-secrets"}, name


def test_secrets_live_in_the_secret_and_the_repo_holds_only_placeholders() -> None:
    import base64

    docs = rendered("cpu")
    secret = one(docs, "Secret", "vae-secrets")
    assert set(secret["data"]) == SECRET_KEYS
    assert not SECRET_KEYS & set(settings(docs))
    for key, value in secret["data"].items():
        assert "replace-me" in base64.b64decode(value).decode(), f"{key}: a real value committed?"


def test_the_gpu_overlay_puts_api_and_worker_on_gpus() -> None:
    cpu, gpu = rendered("cpu"), rendered("gpu")
    for name in ("api", "worker"):
        limits = container(gpu, name)["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) >= 1, name
        tolerations = pod(gpu, name)["spec"]["tolerations"]
        assert any(t["key"] == "nvidia.com/gpu" for t in tolerations), name
        assert "nvidia.com/gpu" not in container(cpu, name)["resources"]["limits"]
        assert "tolerations" not in pod(cpu, name)["spec"]
        assert container(gpu, name)["image"] != container(cpu, name)["image"]
        assert "cuda" in container(gpu, name)["image"].split(":")[1]
    assert "nvidia.com/gpu" not in container(gpu, "redis")["resources"].get("limits", {})


def test_the_images_are_the_ones_compose_builds_at_the_project_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    services = compose()["services"]
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        for name in ("api", "worker"):
            image, tag = container(docs, name)["image"].rsplit(":", 1)
            assert image == services[name]["image"].split(":")[0], (overlay, name)
            assert tag.startswith(version), f"{overlay} {name}: {tag} is not version {version}"


# ---- security and scaling ------------------------------------------------------------------


def test_no_pod_runs_as_root_and_the_api_root_filesystem_is_read_only() -> None:
    for overlay in OVERLAYS:
        docs = rendered(overlay)
        for doc in docs:
            if doc["kind"] != "Deployment":
                continue
            spec = doc["spec"]["template"]["spec"]
            context = spec["securityContext"]
            assert context["runAsNonRoot"] is True and context["runAsUser"] != 0
            for c in spec["containers"]:
                assert c["securityContext"]["allowPrivilegeEscalation"] is False
                assert c["securityContext"].get("runAsUser", context["runAsUser"]) != 0
                assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
        api = pod(docs, "api")["spec"]
        assert api["securityContext"]["runAsUser"] == API_UID
        assert api["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
        volumes = {v["name"]: v for v in api["volumes"]}
        for mount in api["containers"][0]["volumeMounts"]:
            assert "emptyDir" in volumes[mount["name"]], mount
        assert "/tmp" in {m["mountPath"] for m in api["containers"][0]["volumeMounts"]}


def test_the_api_scales_on_cpu_and_keeps_one_pod_through_disruptions() -> None:
    docs = rendered("cpu")
    deployment = one(docs, "Deployment", "api")
    assert "replicas" not in deployment["spec"], "the HorizontalPodAutoscaler owns the count"
    hpa = one(docs, "HorizontalPodAutoscaler", "api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": deployment["metadata"]["name"],
    }  # fmt: skip
    (metric,) = hpa["spec"]["metrics"]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert container(docs, "api")["resources"]["requests"]["cpu"], "utilisation needs a request"
    pdb = one(docs, "PodDisruptionBudget", "api")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"], "drains could never proceed"


def test_every_service_selects_the_pods_it_names() -> None:
    docs = rendered("cpu")
    for service in (d for d in docs if d["kind"] == "Service"):
        name = service["metadata"]["name"]
        template = pod(docs, name)
        assert service["spec"]["selector"].items() <= template["metadata"]["labels"].items()
        ports = {p.get("name") for c in template["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, name


def test_redis_keeps_the_queue_as_compose_does() -> None:
    docs = rendered("cpu")
    args = container(docs, "redis")["args"]
    compose_args = load_yaml(COMPOSE)["services"]["redis"]["command"]
    for option in ("--maxmemory-policy", "--appendonly"):
        assert args[args.index(option) + 1] == compose_args[compose_args.index(option) + 1]
    assert one(docs, "Deployment", "redis")["spec"]["replicas"] == 1, "one Redis: the queue"
    assert one(docs, "Deployment", "redis")["spec"]["strategy"]["type"] == "Recreate"
