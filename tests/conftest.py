"""Fixtures shared by the unit and integration suites."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.paths import FIXTURES, SHIPPED_MODELS
from tests.support.processes import RedisServer, ServiceProcess, redis_running, running_service


@pytest.fixture(scope="session")
def heldout_digits() -> tuple[np.ndarray, np.ndarray]:
    """256 MNIST digits the shipped model never trained on: uint8 [N,28,28] and labels."""
    with np.load(FIXTURES / "mnist-heldout-256.npz") as data:
        return data["images"], data["labels"]


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the shipped model repository (tests may add or delete versions)."""
    target = tmp_path_factory.mktemp("repo") / "models"
    shutil.copytree(
        SHIPPED_MODELS, target, ignore=shutil.ignore_patterns(".staging-*", ".deleting-*")
    )
    return target


@pytest.fixture(scope="session")
def service(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """`vae serve` on the embedded defaults (no Redis) with the shipped model, over real HTTP."""
    logs = tmp_path_factory.mktemp("logs")
    env = {"VAE_MODELS_DIR": str(models_dir), "VAE_DATA_DIR": str(logs / "data")}
    with running_service(env, logs) as process:
        yield process


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A redis-server of this test's own, on a free port."""
    with redis_running() as server:
        yield server
