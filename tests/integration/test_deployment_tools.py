"""The deployment files run through their tools, each a process of its own: the compose files
against the compose specification (check-jsonschema), the Dockerfile with hadolint, the image
requirements from docker/requirements.py, the Prometheus config with promtool, and the image's
entrypoint run by sh. The checks that only read the files are in tests/unit/test_deployment.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.deployment import (
    COMPOSE,
    COMPOSE_GPU,
    COMPOSE_S3,
    DOCKER,
    DOCKERFILE,
    PROMETHEUS_CONFIG,
)
from tests.support.paths import ROOT

BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name
    if not path.exists():
        pytest.fail(f"{name} is not in the venv: pip install -e '.[dev]'")
    return str(path)


def test_the_compose_files_follow_the_compose_specification() -> None:
    result = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE), str(COMPOSE_GPU),
         str(COMPOSE_S3)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dockerfile_has_no_hadolint_findings() -> None:
    result = subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def requirements(*args: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, str(DOCKER / "requirements.py"), "--pyproject", str(ROOT / "pyproject.toml"), *args],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return result.stdout.split()


def test_the_image_requirements_come_from_pyproject() -> None:
    api = requirements()
    assert any(r.startswith("onnxruntime>=") for r in api)
    assert not [r for r in api if r.startswith(("torch", "safetensors", "onnx>"))]
    gpu = requirements("--accelerator", "cuda")
    assert not [r for r in gpu if r.startswith("onnxruntime>")]
    assert any(r.startswith("onnxruntime-gpu") for r in gpu)
    assert any(r.startswith("onnx>") for r in gpu), "the CUDA provider's fp16 graphs need onnx"
    worker = requirements("--extra", "train")
    assert {"safetensors", "onnx"} <= {re.split(r"[<>=\[]", r)[0] for r in worker}
    assert not [r for r in worker if r.startswith("torch")], "torch comes from PyTorch's index"


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_prometheus_config() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def run_entrypoint(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), "sh", "-c", "echo ran"],
        env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def test_the_entrypoint_seeds_an_empty_models_volume_once(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    (shipped / "mnist" / "1").mkdir(parents=True)
    (shipped / "mnist" / "DEFAULT").write_text("1")
    (shipped / "mnist" / "1" / "manifest.json").write_text("{}")
    volume = tmp_path / "volume" / "models"
    env = {"VAE_SHIPPED_MODELS": str(shipped), "VAE_MODELS_DIR": str(volume)}

    first = run_entrypoint(env)
    assert first.returncode == 0 and first.stdout.strip().endswith("ran"), first.stderr
    assert (volume / "mnist" / "1" / "manifest.json").is_file()
    assert sorted(p.name for p in volume.iterdir()) == [".seeded", "mnist"]  # no staging left

    shutil.rmtree(volume / "mnist")  # an admin deleted it: it stays deleted
    assert run_entrypoint(env).returncode == 0
    assert not (volume / "mnist").exists()


def test_the_entrypoint_without_shipped_models_only_runs_the_command(tmp_path: Path) -> None:
    result = run_entrypoint({"VAE_MODELS_DIR": str(tmp_path / "models")})
    assert result.returncode == 0 and result.stdout.strip() == "ran"
    assert not (tmp_path / "models").exists()


def test_the_entrypoint_leaves_an_object_store_repository_to_the_api(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    (shipped / "mnist").mkdir(parents=True)
    result = subprocess.run(
        ["sh", str(DOCKER / "entrypoint.sh"), "sh", "-c", "echo ran"],
        env={"PATH": "/usr/bin:/bin", "VAE_SHIPPED_MODELS": str(shipped),
             "VAE_MODELS_DIR": "s3://vae-service/models"},
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip() == "ran", result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shipped"], "made a local s3: directory"
