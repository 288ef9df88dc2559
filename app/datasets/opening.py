"""The dataset store from a setting: a directory, or an `s3://bucket/prefix` in an object store."""

from __future__ import annotations

import tempfile
from pathlib import Path

from app.datasets.objects import ObjectDatasetStore
from app.datasets.store import DatasetStore
from app.storage.locations import ObjectUrl
from app.storage.objects import ObjectStore

Datasets = DatasetStore | ObjectDatasetStore
DATASETS = "datasets"  # the store's folder under the data location, on disk or in the store


def open_datasets(
    data_dir: Path | ObjectUrl, endpoint: str | None = None, cache_dir: Path | None = None
) -> Datasets:
    """The datasets under `data_dir`; for an object store, local copies go to `cache_dir`."""
    if isinstance(data_dir, ObjectUrl):
        local = cache_dir or Path(tempfile.gettempdir()) / "vae-datasets-cache"
        return ObjectDatasetStore(ObjectStore(data_dir.child(DATASETS), endpoint), local)
    return DatasetStore.in_data_dir(data_dir)
