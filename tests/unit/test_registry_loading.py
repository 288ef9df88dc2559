"""ModelRegistry: a request naming a version whose load does not end waits at most its deadline
(503, the load goes on), and a later request finds the load's outcome."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from app.repository.store import ModelRepository
from app.serving.registry import LoadedModel, ModelRegistry, ModelUnavailable
from tests.support.in_process import settings_for
from tests.support.repositories import copy_version, mnist_repo


def test_a_request_waits_for_a_load_at_most_its_deadline(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = mnist_repo(models_dir, tmp_path)
    copy_version(repo, 1, 2)
    (repo / "mnist" / "DEFAULT").write_text("1\n")
    settings = settings_for(repo, tmp_path / "data", request_timeout_s=0.2)
    registry = ModelRegistry(ModelRepository(repo), settings)
    load = registry._load_blocking
    release = threading.Event()

    def stuck_on_version_2(name: str, version: int) -> LoadedModel:
        if version == 2:
            release.wait(60)  # a file system that does not answer, for now
        return load(name, version)

    monkeypatch.setattr(registry, "_load_blocking", stuck_on_version_2)

    async def scenario() -> None:
        await registry.start()
        try:
            with pytest.raises(ModelUnavailable, match="still loading"):
                await registry.resolve("mnist:2")
            assert (await registry.resolve("mnist")).version == 1  # the others answer
            with pytest.raises(ModelUnavailable, match="still loading"):
                await registry.resolve("mnist:2")  # the same load, waited for again
            release.set()
            assert (await registry.load("mnist", 2)).version == 2
            assert (await registry.resolve("mnist:2")).version == 2
        finally:
            release.set()
            await registry.stop()

    asyncio.run(scenario())
