"""Reading the deployment files as compose would: docker-compose.yml with its variables
interpolated, the services' environments and commands, and the metric names app/metrics.py
defines. Shared by the static checks and the test that runs the compose processes locally."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics import MetricWrapperBase

from tests.support.paths import ROOT

COMPOSE = ROOT / "docker-compose.yml"
COMPOSE_GPU = ROOT / "docker-compose.gpu.yml"
COMPOSE_S3 = ROOT / "docker-compose.s3.yml"
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "Dockerfile"
DOCKER = ROOT / "docker"
PROMETHEUS_CONFIG = DOCKER / "prometheus.yml"
GATEWAY_CONFIG = DOCKER / "nginx.conf"
DASHBOARD = DOCKER / "grafana" / "dashboards" / "vae-service.json"
GRAFANA_PROVISIONING = DOCKER / "grafana" / "provisioning"

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<plain>[A-Za-z_][A-Za-z0-9_]*)"
    r"|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\})"
)


class MissingVariable(LookupError):
    """A `${VAR:?message}` whose variable is unset: compose refuses to start with `message`."""


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable interpolation: $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error}, ${VAR:+other}, ${VAR+other} and $$ for a dollar."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["plain"] or match["name"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in (":-", "-"):
            return arg if empty else str(value)
        if op in (":?", "?"):
            if empty:
                raise MissingVariable(arg or f"{name} is required")
            return str(value)
        if op in (":+", "+"):
            return "" if empty else arg
        return value or ""

    return _VARIABLE.sub(replace, text)


def interpolated(node: Any, env: Mapping[str, str]) -> Any:
    """Every string in a loaded YAML tree, interpolated."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolated(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolated(value, env) for key, value in node.items()}
    return node


def load_yaml(path: Path) -> Any:
    """A YAML file (anchors and merge keys resolved, no interpolation)."""
    return yaml.safe_load(path.read_text())


def compose(env: Mapping[str, str] | None = None, path: Path = COMPOSE) -> dict[str, Any]:
    """The compose file, interpolated with `env` when given."""
    tree = load_yaml(path)
    return dict(tree if env is None else interpolated(tree, env))


def environment(service: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    """A service's `environment` (a mapping or a list of KEY=VALUE) as strings; a key with no
    value takes the variable's value from `env`, as compose does."""
    raw = service.get("environment") or {}
    pairs: dict[str, Any] = (
        dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
        if isinstance(raw, list)
        else dict(raw)
    )
    found: dict[str, str] = {}
    for key, value in pairs.items():
        if value is None:
            if key in env:
                found[key] = env[key]
            continue
        found[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return found


def command(service: Mapping[str, Any]) -> list[str]:
    """A service's command as an argument list (the exec form; a string is split on spaces)."""
    raw = service.get("command") or []
    return raw.split() if isinstance(raw, str) else [str(arg) for arg in raw]


def healthcheck_command(service: Mapping[str, Any]) -> list[str]:
    """The command of a service's healthcheck (CMD form), without the CMD marker."""
    test = service["healthcheck"]["test"]
    if isinstance(test, str):
        return ["sh", "-c", test]
    kind, *args = test
    return ["sh", "-c", args[0]] if kind == "CMD-SHELL" else list(args)


def dashboard() -> dict[str, Any]:
    """The provisioned Grafana dashboard."""
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel (rows' nested panels too)."""
    found: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            walk(panel.get("panels", []))
            for target in panel.get("targets", []):
                found.append((panel["title"], target["expr"]))

    walk(dashboard()["panels"])
    return found


def defined_metric_names() -> set[str]:
    """Every sample name the metrics in app/metrics.py can produce (counters' `_total`,
    histograms' `_bucket`, `_sum` and `_count` included)."""
    from app import metrics

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
    }
    names: set[str] = set()
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            for family in value.describe():
                names.update(family.name + suffix for suffix in suffixes[family.type])
    return names


# The standard AWS variables the S3 client reads (issue 15), the only non-VAE_ ones we set.
AWS_SETTINGS = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"}


def known_settings() -> set[str]:
    """Every VAE_ variable something in the images reads: the Settings fields of app/config.py,
    the options of app/cli.py that take an envvar, and the ones docker/entrypoint.sh reads."""
    from app.config import Settings

    names = {f"VAE_{field.upper()}" for field in Settings.model_fields}
    names |= set(re.findall(r'envvar="(VAE_[A-Z0-9_]+)"', (ROOT / "app" / "cli.py").read_text()))
    names |= set(re.findall(r"\$\{?(VAE_[A-Z0-9_]+)", (DOCKER / "entrypoint.sh").read_text()))
    return names
