"""The dataset store on an S3-compatible object store: `<prefix>/datasets/<name>/manifest.json`
beside the normalised arrays `data-<id>.npz` it names.

An upload is spooled to a local temporary directory as it arrives (counted, capped and hashed as
on disk: never the whole body in memory), parsed and normalised there, then the arrays are
streamed to the store in a multipart upload under a name of their own, and the manifest is put
last, create-only: the commit. Two uploads of one name at once cannot both win (the loser's
arrays are removed, it gets DatasetExists), and a failed upload leaves no manifest, so no
dataset. A worker reads a dataset through a local copy of its arrays, downloaded once (the file
name is unique to the upload, so a copy is never stale).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from app.datasets.imagezip import ImageOptions
from app.datasets.safezip import UnpackLimits
from app.datasets.store import (
    MANIFEST_FILE,
    DatasetExists,
    DatasetManifest,
    DatasetNotFound,
    Upload,
    prepare,
    remove_stale_dirs,
)
from app.storage.files import NAME_PATTERN, CorruptStoredFile, check_name
from app.storage.objects import ObjectExists, ObjectStore

UPLOAD_SPOOL = "vae-upload-"  # an upload's local spool, in the temporary directory


class ObjectDatasetStore:
    """Reads and writes the datasets kept in `store`; `cache_dir` holds workers' local copies."""

    def __init__(self, store: ObjectStore, cache_dir: Path) -> None:
        self.store = store
        self.cache_dir = cache_dir

    def __str__(self) -> str:
        return str(self.store)

    def names(self) -> list[str]:
        """Names of the stored datasets, sorted."""
        found = []
        for info in self.store.objects():
            name, _, rest = info.key.partition("/")
            if rest == MANIFEST_FILE and NAME_PATTERN.fullmatch(name):
                found.append(name)
        return sorted(found)

    def exists(self, name: str) -> bool:
        """True when a dataset of this name is stored."""
        return self.store.exists(f"{check_name(name)}/{MANIFEST_FILE}")

    def manifest(self, name: str) -> DatasetManifest:
        """The manifest of a stored dataset; CorruptStoredFile when the stored one is unreadable."""
        if not NAME_PATTERN.fullmatch(name):
            raise DatasetNotFound(f"no dataset named {name!r}")
        try:
            data = self.store.get(f"{name}/{MANIFEST_FILE}")
        except FileNotFoundError:
            raise DatasetNotFound(f"no dataset named {name!r}") from None
        try:
            return DatasetManifest.model_validate_json(data)
        except ValueError as error:
            raise CorruptStoredFile(
                f"the server's stored manifest of dataset {name!r} is unreadable: {error}"
            ) from None

    def path(self, name: str) -> Path:
        """A local copy of the dataset's arrays (downloaded once), for training. Copies of
        earlier uploads under the name (deleted since, then uploaded again) are removed."""
        manifest = self.manifest(name)
        local = self.cache_dir / name / manifest.data_file
        if not local.is_file():
            local.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.store.download(f"{name}/{manifest.data_file}", local)
            except FileNotFoundError:
                raise DatasetNotFound(f"no dataset named {name!r}") from None
            for earlier in local.parent.glob("data-*"):
                if earlier != local:
                    with contextlib.suppress(OSError):
                        earlier.unlink()
        return local

    def begin(self, name: str, limit: int) -> Upload:
        """A new upload for `name`, spooled to a local temporary directory, capped at `limit`."""
        check_name(name)
        return Upload(Path(tempfile.mkdtemp(prefix=UPLOAD_SPOOL)), limit)

    def commit(
        self,
        name: str,
        upload: Upload,
        options: ImageOptions | None = None,
        limits: UnpackLimits | None = None,
    ) -> DatasetManifest:
        """Parses a finished upload, streams its arrays to the store and commits the manifest
        (create-only). On a failure no dataset is stored; a commit that failed leaves the arrays
        (its manifest may still land: ObjectStore.commit), which `sweep` removes if no manifest
        ever names them. The spool is removed either way."""
        try:
            data_file = f"data-{uuid.uuid4().hex}.npz"
            manifest = prepare(name, upload, options or ImageOptions(), limits, data_file)
            if self.exists(name):
                raise DatasetExists(f"a dataset named {name!r} exists; delete it first")
            data_key = f"{name}/{data_file}"
            self.store.upload(data_key, upload.staging / data_file)
            try:
                self.store.commit(
                    f"{name}/{MANIFEST_FILE}", (upload.staging / MANIFEST_FILE).read_bytes()
                )
            except ObjectExists:
                with contextlib.suppress(Exception):
                    self.store.delete([data_key])  # another upload took the name
                raise DatasetExists(f"a dataset named {name!r} exists; delete it first") from None
        finally:
            upload.discard()
        return manifest

    def delete(self, name: str) -> None:
        """Removes a dataset: its manifest first (gone at once, whole), then its arrays."""
        manifest = self.manifest(name)
        self.store.delete([f"{name}/{MANIFEST_FILE}"])
        self.store.delete([f"{name}/{manifest.data_file}"])
        shutil.rmtree(self.cache_dir / name, ignore_errors=True)

    def sweep(self, older_than_s: float = 86_400.0) -> int:
        """Removes what uploads that died left: this host's local spools (at once when their
        owner is gone, else once older than `older_than_s`), then arrays no manifest names in
        the store, older than that (an upload that died between the two puts); returns how many
        it removed."""
        spools = remove_stale_dirs(
            Path(tempfile.gettempdir()).glob(f"{UPLOAD_SPOOL}*"), older_than_s
        )
        cutoff = time.time() - older_than_s
        objects = self.store.objects()
        named: set[str] = set()
        for name in {info.key.partition("/")[0] for info in objects}:
            with contextlib.suppress(DatasetNotFound, CorruptStoredFile):
                named.add(f"{name}/{self.manifest(name).data_file}")
        orphans = [
            info.key
            for info in objects
            if info.key.rpartition("/")[2].startswith("data-")
            and info.key not in named
            and info.modified < cutoff
        ]
        self.store.delete(orphans)
        return spools + len(orphans)

    def total_bytes(self) -> int:
        """Bytes the stored datasets take in the store (data and manifests)."""
        return sum(info.size for info in self.store.objects())
