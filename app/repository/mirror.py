"""An api replica's local copy of an object-store repository (Triton's and KServe's model: the
store is the source of truth, each replica serves from its own disk).

`CachedRepository` is a ModelRepository over the cache directory (`VAE_MODELS_CACHE_DIR`), so the
registry loads, swaps and serves from it exactly as from a plain directory. `sync` pulls from the
store with one listing: a committed version not in the cache (or cached under another ETag of
its manifest) is downloaded into a staging directory, every file checked against the manifest's
sha256, and renamed into place whole; `DEFAULT` is copied when its ETag changes; a version whose
manifest is gone from the store is removed from the cache (the registry keeps serving it from
memory until requests holding it finish). When the store is unreachable, `sync` raises
ObjectStoreUnavailable, the cache is left as it is and `status` says `degraded`: the replica
serves what it holds. The admin writes (`set_default`, `delete_version`) go to the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.repository.copying import seed
from app.repository.integrity import VersionDamaged
from app.repository.object_repository import ObjectModelRepository, parse_manifest
from app.repository.store import DEFAULT_FILE, MANIFEST, ModelRepository, version_number
from app.storage.files import NAME_PATTERN, CorruptStoredFile, write_atomic
from app.storage.objects import ObjectInfo, ObjectStoreUnavailable

logger = logging.getLogger(__name__)
ETAG_FILE = ".etag"  # the store's ETag of the cached manifest (hidden: not a version file)


def _remove_dir(directory: Path) -> None:
    """Renames a directory away, then removes it: nobody sees half of it."""
    trash = directory.with_name(f".deleting-{directory.name}-{os.getpid()}-{time.monotonic_ns()}")
    with contextlib.suppress(FileNotFoundError):
        os.rename(directory, trash)
        shutil.rmtree(trash, ignore_errors=True)


class CachedRepository(ModelRepository):
    """The cache directory as a model repository, filled from `source` by `sync`."""

    def __init__(
        self, cache_dir: Path, source: ObjectModelRepository, shipped: Path | None = None
    ) -> None:
        super().__init__(cache_dir)
        self.source = source
        self.shipped = shipped  # seeds the store if its first successful listing is empty
        self._lock = threading.Lock()
        self._default_etags: dict[str, str | None] = {}
        self._refused: set[tuple[str, int, str | None]] = set()
        self._verified = False
        self._swept = False
        self.error: str | None = None
        self.synced_at: float | None = None

    # ---- state ---------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """'ok' once a sync has succeeded and the last one did; 'degraded' while the store is
        unreachable (serving what the cache holds); with the source and the last good sync."""
        healthy = self.error is None and self.synced_at is not None
        return {
            "status": "ok" if healthy else "degraded",
            "source": str(self.source),
            "cache": str(self.root),
            "last_synced_at": None
            if self.synced_at is None
            else datetime.fromtimestamp(self.synced_at, UTC).isoformat(timespec="seconds"),
            "error": self.error,
        }

    # ---- pulling -------------------------------------------------------------------------
    def sync(self) -> None:
        """Brings the cache up to the store (see the module's docstring); ObjectStoreUnavailable
        when the store cannot be listed, leaving the cache as it was, or the OSError of a cache
        that cannot be written (either way `status` says degraded, and why)."""
        with self._lock:
            if not self._verified:
                self.root.mkdir(parents=True, exist_ok=True)
                self._verify_cache()
                self._verified = True
            try:
                listing = self.source.listing()
                if self.shipped is not None:
                    # empty, or a seed left half done; raises: tried again at the next sync
                    if seed(self.source, self.shipped, listing):
                        listing = self.source.listing()
                    self.shipped = None  # the store is seeded, or used: a process seeds once
                if not self._swept:  # once a process: what publishers that died left
                    for leftover in self.source.sweep_store(listing=listing):
                        logger.info("removed %s, an uncommitted version's files", leftover)
                    self._swept = True
                for name, model in listing.items():
                    for version, manifest in sorted(model.manifests.items()):
                        self._pull_version(name, version, manifest)
                    self._pull_default(name, model.default)
                self._drop_deleted(
                    {(name, v) for name, model in listing.items() for v in model.manifests}
                )
            except OSError as error:  # the store unreachable, or the cache's own disk failing
                message = (
                    str(error)
                    if isinstance(error, ObjectStoreUnavailable)
                    else f"the cache {self.root} could not be written: {error}"
                )
                if self.error is None:
                    logger.error("%s; serving the cached models from %s", message, self.root)
                self.error = message
                raise
            if self.error is not None:
                logger.info("in sync with %s again", self.source)
            self.error = None
            self.synced_at = time.time()

    def _cached_etag(self, name: str, version: int) -> str | None:
        directory = self.version_dir(name, version)
        try:
            return (directory / ETAG_FILE).read_text()
        except OSError:
            return None

    def _pull_version(self, name: str, version: int, manifest: ObjectInfo) -> None:
        etag = manifest.etag or ""
        if self._cached_etag(name, version) == etag or (name, version, etag) in self._refused:
            return
        staging = self.staging_dir(name)
        try:
            data = self.source.manifest_bytes(name, version)
            parsed = parse_manifest(data, f"model {name} version {version}")
            for relative, digest in parsed.files.items():
                path = staging / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                self.source.store.download(f"{name}/{version}/{relative}", path)
                if self.hashes.sha256(path) != digest:  # remembered: the registry reads it once
                    raise CorruptStoredFile(
                        f"{name}/{version}/{relative} in {self.source} does not match the sha256 "
                        "its manifest gives"
                    )
            (staging / MANIFEST).write_bytes(data)
            (staging / ETAG_FILE).write_text(etag)
            target = self.version_dir(name, version)
            if self._cached_etag(name, version) == etag:  # another replica sharing the cache
                shutil.rmtree(staging, ignore_errors=True)
                return
            if target.exists():
                _remove_dir(target)  # cached under an older manifest
            try:
                os.rename(staging, target)
            except OSError:  # another replica sharing this cache put it there meanwhile
                shutil.rmtree(staging, ignore_errors=True)
                return
            logger.info("cached %s:%d from %s", name, version, self.source)
        except Exception as error:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(error, ObjectStoreUnavailable):
                raise
            if isinstance(error, FileNotFoundError):
                return  # deleted while we copied it
            logger.error("not caching %s:%d: %s", name, version, error)
            self._refused.add((name, version, etag))  # not fetched again until it changes

    def _pull_default(self, name: str, default: ObjectInfo | None) -> None:
        etag = None if default is None else default.etag
        marker = self.root / name / DEFAULT_FILE
        if name in self._default_etags and self._default_etags[name] == etag:
            return
        if default is None:
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
        else:
            try:
                data = self.source.store.get(f"{name}/{DEFAULT_FILE}")
            except FileNotFoundError:
                return
            marker.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(marker, data)
        self._default_etags[name] = etag

    def _drop_deleted(self, published: set[tuple[str, int]]) -> None:
        for name in self.names():
            for version in self.versions(name):
                if (name, version) not in published:
                    _remove_dir(self.version_dir(name, version))
                    logger.info("%s:%d is gone from %s; removed from the cache", name, version,
                                self.source)  # fmt: skip

    def _verify_cache(self) -> None:
        """Once, at start: every cached version's files against its manifest's sha256 (a
        replica restarting on a cache a crash left half-written drops what does not match)."""
        for entry in self.root.iterdir():
            if not NAME_PATTERN.fullmatch(entry.name) or not entry.is_dir():
                continue
            for child in entry.iterdir():
                if child.name.startswith((".staging-", ".deleting-")):
                    shutil.rmtree(child, ignore_errors=True)
                    continue
                if version_number(child.name) is None:
                    continue
                try:
                    manifest = parse_manifest((child / MANIFEST).read_bytes(), str(child))
                    self.hashes.verify(child, manifest.files)
                    good = True
                except (OSError, CorruptStoredFile, VersionDamaged):
                    good = False
                if not good:
                    logger.warning("dropping %s from the cache: it does not match its manifest",
                                   child)  # fmt: skip
                    _remove_dir(child)

    # ---- writing goes to the store -------------------------------------------------------
    def set_default(self, name: str, version: int) -> None:
        """Moves DEFAULT in the store, then pulls it."""
        self.source.set_default(name, version)
        with contextlib.suppress(ObjectStoreUnavailable):
            self.sync()

    def delete_version(self, name: str, version: int) -> None:
        """Deletes the version in the store, then drops it from the cache."""
        self.source.delete_version(name, version)
        with contextlib.suppress(ObjectStoreUnavailable):
            self.sync()
