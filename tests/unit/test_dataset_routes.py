"""The datasets routes against a store that misbehaves the way a remote one can: slow to say how
much it holds, or failing halfway through a listing. The store is a fake: a real DatasetStore on
a temporary directory with one method made slow or failing (installed in place of the one
create_app opens)."""

from __future__ import annotations

import asyncio
import math
import re
import threading
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import httpx
import pytest

from app.datasets.store import DatasetManifest, DatasetStore
from app.main import create_app
from app.storage.objects import ObjectStoreUnavailable
from tests.support.dataset_builders import digits, npz_bytes
from tests.support.in_process import serving, settings_for


class SlowToMeasure(DatasetStore):
    """Measuring its size waits until `release` is set (a store that does not answer)."""

    release = threading.Event()

    def total_bytes(self) -> int:
        self.release.wait(10)  # bounded: a test that fails must not hang
        return super().total_bytes()


class FailsAfterListing(DatasetStore):
    """Lists a dataset, then cannot read its manifest (the store went away between the two)."""

    def names(self) -> list[str]:
        return ["ones"]

    def manifest(self, name: str) -> DatasetManifest:
        raise ObjectStoreUnavailable("the object store is unavailable: connection refused")


def _serve_with(
    store_class: type[DatasetStore], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """The service in process, its dataset store an instance of `store_class`."""
    data = tmp_path / "data"
    monkeypatch.setattr(
        "app.main.open_datasets",
        lambda *args, **kwargs: store_class.in_data_dir(data),
    )
    (tmp_path / "models").mkdir()
    return serving(create_app(settings_for(tmp_path / "models", data)))


def _dataset_bytes(text: str) -> float:
    found = re.search(r"^vae_dataset_bytes (\S+)$", text, re.MULTILINE)
    assert found is not None, "vae_dataset_bytes is not exported"
    return float(found.group(1))


def test_metrics_answer_without_waiting_for_the_dataset_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    SlowToMeasure.release.clear()

    async def scenario() -> None:
        async with _serve_with(SlowToMeasure, tmp_path, monkeypatch) as http:
            metrics = await http.get("/metrics")  # the store is still measuring
            assert metrics.status_code == 200
            assert math.isnan(_dataset_bytes(metrics.text))  # unknown, not 0
            SlowToMeasure.release.set()
            images, labels = digits()
            put = await http.put("/datasets/ones", content=npz_bytes(images=images, labels=labels))
            assert put.status_code == 201, put.text
            stored = sum(p.stat().st_size for p in (tmp_path / "data").rglob("ones/*"))
            assert _dataset_bytes((await http.get("/metrics")).text) == stored > 0

    asyncio.run(scenario())


def test_a_listing_the_store_cannot_finish_is_a_503_not_a_shorter_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        async with _serve_with(FailsAfterListing, tmp_path, monkeypatch) as http:
            listing = await http.get("/datasets")
            assert listing.status_code == 503, listing.text
            assert listing.json()["error"] == "storage_unavailable"

    asyncio.run(scenario())
