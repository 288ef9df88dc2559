"""A repository from a setting: a directory, or an `s3://bucket/prefix` in an object store."""

from __future__ import annotations

from pathlib import Path

from app.repository.mirror import CachedRepository
from app.repository.object_repository import ObjectModelRepository
from app.repository.protocol import Repository
from app.repository.store import ModelRepository
from app.storage.locations import ObjectUrl
from app.storage.objects import ObjectStore


def open_repository(location: Path | ObjectUrl, endpoint: str | None = None) -> Repository:
    """The model repository at `location` (the object store at `endpoint` for a URL)."""
    if isinstance(location, ObjectUrl):
        return ObjectModelRepository(ObjectStore(location, endpoint))
    return ModelRepository(location)


def open_served_repository(
    location: Path | ObjectUrl,
    endpoint: str | None,
    cache_dir: Path,
    shipped: Path | None = None,
) -> ModelRepository:
    """What an api replica serves from: the directory itself, or for a URL the replica's local
    copy in `cache_dir` (a CachedRepository, filled by its `sync`, which seeds an empty store
    with the `shipped` models)."""
    if isinstance(location, ObjectUrl):
        source = ObjectModelRepository(ObjectStore(location, endpoint))
        return CachedRepository(cache_dir, source, shipped)
    return ModelRepository(location)
