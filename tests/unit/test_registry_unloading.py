"""ModelRegistry under a cap on the loaded versions (VAE_MAX_LOADED_VERSIONS, the memory budget):
the least recently used version that is no model's default is unloaded, loads again when a
request names it, and a request that resolved it before finishes on it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app import metrics
from app.repository.store import ModelRepository
from app.serving import registry as registry_module
from app.serving.memory import version_bytes
from app.serving.registry import ModelRegistry
from tests.support.in_process import settings_for
from tests.support.repositories import copy_version, mnist_repo


def versions(models_dir: Path, tmp_path: Path, count: int, default: int = 1) -> Path:
    """A repository of mnist versions 1..count, `default` the default."""
    repo = mnist_repo(models_dir, tmp_path)
    for number in range(2, count + 1):
        copy_version(repo, 1, number)
    (repo / "mnist" / "DEFAULT").write_text(f"{default}\n")
    return repo


def running(
    repo: Path, tmp_path: Path, body: Callable[[ModelRegistry], Awaitable[None]], **settings: Any
) -> None:
    # One engine, no choice: each load here is a fifth of a second, not two (the choice is
    # tested elsewhere; here versions come and go).
    pinned = {"engine": "onnxruntime", "precision": "fp32", **settings}
    registry = ModelRegistry(ModelRepository(repo), settings_for(repo, tmp_path / "data", **pinned))

    async def scenario() -> None:
        await registry.start()
        try:
            await body(registry)
        finally:
            await registry.stop()

    asyncio.run(scenario())


def loaded(registry: ModelRegistry) -> list[int]:
    return sorted(model.version for model in registry.loaded())


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


def test_the_least_recently_used_version_goes_and_the_default_stays(
    models_dir: Path, tmp_path: Path
) -> None:
    async def body(registry: ModelRegistry) -> None:
        await registry.resolve("mnist:2")
        await registry.resolve("mnist:3")
        assert loaded(registry) == [1, 2, 3]
        await registry.resolve("mnist:2")  # 3 is now the least recently used non-default
        await registry.resolve("mnist:4")
        assert loaded(registry) == [1, 2, 4]  # the default, least used of all, stays
        assert metrics.MODELS_LOADED._value.get() == 3
        again = await registry.resolve("mnist:3")  # loads again on demand
        assert again.version == 3
        assert loaded(registry) == [1, 3, 4]  # 2, used before 4, went

    repo = versions(models_dir, tmp_path, 4)
    running(repo, tmp_path, body, max_loaded_versions=3)


def test_a_version_loaded_past_a_cap_the_defaults_fill_goes_once_unused(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "SPARE_S", 0.2)

    async def body(registry: ModelRegistry) -> None:
        model = await registry.resolve("mnist:1")
        assert model.version == 1
        assert loaded(registry) == [1, 2]  # served over the cap, for now
        await until(lambda: loaded(registry) == [2], "version 1 unloaded once unused")
        assert metrics.MODELS_LOADED._value.get() == 1

    repo = versions(models_dir, tmp_path, 2, default=2)
    running(repo, tmp_path, body, max_loaded_versions=1)


def test_a_request_holding_an_unloaded_version_finishes_on_it(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(registry_module, "QUIET_BEFORE_CLOSE_S", 0.3)

    async def body(registry: ModelRegistry) -> None:
        held = await registry.resolve("mnist:2")
        await registry.resolve("mnist:3")
        assert loaded(registry) == [1, 3]
        z = held.decoder.pack(np.zeros((1, *held.decoder.row_shape)))
        out = await asyncio.wait_for(held.decode_runner.submit(z), 10)  # unloaded, not stopped
        assert next(iter(out.values())).shape[0] == 1
        await until(lambda: not registry._unloaded, "the unloaded version's runners stopped")

    repo = versions(models_dir, tmp_path, 3)
    running(repo, tmp_path, body, max_loaded_versions=2)


def test_the_memory_budget_caps_the_loaded_versions_too(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = versions(models_dir, tmp_path, 3)
    size = version_bytes(repo / "mnist" / "1")
    monkeypatch.setattr(registry_module, "budget_bytes", lambda settings: int(size * 2.5))

    async def body(registry: ModelRegistry) -> None:
        await registry.resolve("mnist:2")
        await registry.resolve("mnist:3")
        assert loaded(registry) == [1, 3]
        assert registry.loaded_bytes() == 2 * size

    running(repo, tmp_path, body)
