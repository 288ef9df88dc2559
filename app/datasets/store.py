"""The dataset store: `<data_dir>/datasets/<name>/` holds `data.npz` and `manifest.json`.

An upload streams into a hidden staging directory beside the datasets, counted against a size cap
and hashed as it arrives. It is then parsed, written out normalised (`images` uint8 or float32
[N, C, H, W], optional int64 `labels`) with its manifest, and the staging directory is renamed to
the dataset's name: a dataset appears whole or not at all, and a failed upload leaves nothing.

Names are write-once: storing a name that exists raises DatasetExists (delete it first). A name
then always means the same data, which keeps training provenance honest and means a training
job never sees its dataset change under it. Torch-free.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

from app.datasets.formats import ParsedDataset, read_dataset
from app.datasets.imagezip import ImageOptions
from app.datasets.safezip import UnpackLimits
from app.storage.files import NAME_PATTERN, check_name, read_stored_manifest, stored_names

DATA_FILE = "data.npz"
MANIFEST_FILE = "manifest.json"
_UPLOAD_FILE = "upload"
_STAGING_PREFIX = ".staging-"
_TRASH_PREFIX = ".deleting-"
_OWNER_FILE = ".owner"  # locked (flock) by the process whose upload writes the staging directory


class DatasetNotFound(LookupError):
    """No dataset has that name (a name that can never be stored included)."""


class DatasetInUse(RuntimeError):
    """Queued or running jobs train on the dataset: it cannot be deleted until they end (409)."""


class DatasetExists(FileExistsError):
    """A dataset of that name is already stored: names are write-once."""


class UploadTooLarge(ValueError):
    """The upload went past its size cap."""


class ValueRange(BaseModel):
    """Smallest and largest pixel value stored."""

    min: float
    max: float


class LabelCount(BaseModel):
    """How many images carry one label, and the label's class name when it has one."""

    label: int
    count: int
    name: str | None = None


class DatasetManifest(BaseModel):
    """What a stored dataset holds, and where it came from."""

    name: str
    format: str
    count: int
    shape: list[int]
    channels: int
    height: int
    width: int
    dtype: str
    value_range: ValueRange
    labels: list[LabelCount] | None
    class_names: list[str] | None
    sha256: str
    bytes: int
    stored_bytes: int
    options: dict[str, Any]
    created_at: datetime
    data_file: str = DATA_FILE  # the stored data's file name beside the manifest


def _hold(staging: Path) -> int:
    """Locks an owner file in `staging` for as long as the upload runs, and returns its
    descriptor. The file is locked under a name of its own and only then renamed to
    `_OWNER_FILE`, so a sweep never finds it unlocked while its process lives."""
    descriptor, temporary = tempfile.mkstemp(dir=staging, prefix=f"{_OWNER_FILE}-")
    fcntl.flock(descriptor, fcntl.LOCK_EX)
    os.rename(temporary, staging / _OWNER_FILE)
    return descriptor


def owner_gone(directory: Path) -> bool:
    """True when `directory` names an owner no live process holds (its upload's process died:
    the kernel let go of its lock); False while one holds it, or when it names none."""
    try:
        descriptor = os.open(directory / _OWNER_FILE, os.O_RDONLY)
    except OSError:
        return False  # no owner named: only its age can tell
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(descriptor)  # the lock taken, if any, goes with it
    return True


class Upload:
    """An upload in progress: its bytes land in a staging directory, counted and hashed. The
    directory names its owner, locked while the upload runs (`owner_gone`), so what a crashed
    process left is swept at the next start while a live request's staging is never touched."""

    def __init__(self, staging: Path, limit: int) -> None:
        self.staging = staging
        self.limit = limit
        self.size = 0
        self._digest = hashlib.sha256()
        self._owner: int | None = _hold(staging)
        self._file = open(staging / _UPLOAD_FILE, "wb")  # noqa: SIM115 - closed by commit/discard

    @property
    def path(self) -> Path:
        """The file the body is written to."""
        return self.staging / _UPLOAD_FILE

    @property
    def sha256(self) -> str:
        """Hex sha256 of the bytes written so far."""
        return self._digest.hexdigest()

    def write(self, chunk: bytes) -> None:
        """Appends a chunk; UploadTooLarge once the total passes the cap."""
        self.size += len(chunk)
        if self.size > self.limit:
            raise UploadTooLarge(f"the dataset is larger than {self.limit} bytes")
        self._digest.update(chunk)
        self._file.write(chunk)

    def close(self) -> None:
        """Flushes and closes the upload file."""
        self._file.close()

    def disown(self) -> None:
        """Removes the owner file (before the staging directory becomes the dataset); the lock
        is let go by `discard`."""
        with contextlib.suppress(FileNotFoundError):
            (self.staging / _OWNER_FILE).unlink()

    def discard(self) -> None:
        """Removes everything the upload wrote (nothing, once committed) and lets go of it."""
        self._file.close()
        shutil.rmtree(self.staging, ignore_errors=True)
        if self._owner is not None:
            os.close(self._owner)
            self._owner = None


def _manifest(
    name: str,
    parsed: ParsedDataset,
    upload: Upload,
    stored: int,
    options: ImageOptions,
    data_file: str,
) -> DatasetManifest:
    images, labels = parsed.dataset.images, parsed.dataset.labels
    channels, height, width = parsed.dataset.shape
    counts = None
    if labels is not None:
        values, numbers = np.unique(labels, return_counts=True)
        names = parsed.class_names
        counts = [
            LabelCount(label=int(v), count=int(n), name=names[int(v)] if names else None)
            for v, n in zip(values, numbers, strict=True)
        ]
    return DatasetManifest(
        name=name,
        format=parsed.format,
        count=len(parsed.dataset),
        shape=[channels, height, width],
        channels=channels,
        height=height,
        width=width,
        dtype=str(images.dtype),
        value_range=ValueRange(min=float(images.min()), max=float(images.max())),
        labels=counts,
        class_names=parsed.class_names,
        sha256=upload.sha256,
        bytes=upload.size,
        stored_bytes=stored,
        options={
            "resize": list(options.resize) if options.resize else None,
            "channels": options.channels,
        },
        created_at=datetime.now(UTC),
        data_file=data_file,
    )


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def prepare(
    name: str,
    upload: Upload,
    options: ImageOptions,
    limits: UnpackLimits | None,
    data_file: str = DATA_FILE,
) -> DatasetManifest:
    """Parses a finished upload and writes what is stored into its staging directory: the
    normalised arrays as `data_file` (the upload itself removed) and `manifest.json`."""
    upload.close()
    parsed = read_dataset(upload.path, options, limits)
    upload.path.unlink()
    data = upload.staging / data_file
    with open(data, "wb") as handle:
        if parsed.dataset.labels is None:
            np.savez(handle, images=parsed.dataset.images)
        else:
            np.savez(handle, images=parsed.dataset.images, labels=parsed.dataset.labels)
        handle.flush()
        os.fsync(handle.fileno())
    manifest = _manifest(name, parsed, upload, data.stat().st_size, options, data_file)
    _write_synced(
        upload.staging / MANIFEST_FILE, (manifest.model_dump_json(indent=2) + "\n").encode()
    )
    return manifest


def remove_stale_dirs(directories: Iterable[Path], older_than_s: float) -> int:
    """Removes each directory (what a crashed process left) whose owner is gone (`owner_gone`),
    or in which nothing has changed for `older_than_s`; returns how many it removed."""
    cutoff = time.time() - older_than_s
    removed = 0
    for directory in directories:
        try:
            written = [p for p in directory.iterdir() if not p.name.startswith(_OWNER_FILE)]
            newest = max(p.stat().st_mtime for p in [directory, *written])
        except OSError:
            continue  # finished or removed meanwhile
        if newest < cutoff or owner_gone(directory):
            shutil.rmtree(directory, ignore_errors=True)
            removed += 1
    return removed


class DatasetStore:
    """Reads and writes the datasets under `root` (usually `<data_dir>/datasets`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> DatasetStore:
        """The store of a data directory."""
        return cls(Path(data_dir) / "datasets")

    def names(self) -> list[str]:
        """Names of the stored datasets, sorted."""
        return stored_names(self.root, lambda directory: (directory / MANIFEST_FILE).is_file())

    def exists(self, name: str) -> bool:
        """True when a dataset of this name is stored."""
        return (self.root / check_name(name) / MANIFEST_FILE).is_file()

    def _stored(self, name: str) -> Path:
        """The directory of dataset `name`; DatasetNotFound for a name that can never be stored."""
        if not NAME_PATTERN.fullmatch(name):
            raise DatasetNotFound(f"no dataset named {name!r}")
        return self.root / name

    def manifest(self, name: str) -> DatasetManifest:
        """The manifest of a stored dataset; CorruptStoredFile when the stored one is unreadable."""
        path = self._stored(name) / MANIFEST_FILE
        try:
            return read_stored_manifest(DatasetManifest, path, f"dataset {name!r}")
        except (FileNotFoundError, NotADirectoryError):
            raise DatasetNotFound(f"no dataset named {name!r}") from None

    def path(self, name: str) -> Path:
        """The `data.npz` of a stored dataset (arrays `images` and optional `labels`), for training."""
        path = self._stored(name) / DATA_FILE
        if not path.is_file():
            raise DatasetNotFound(f"no dataset named {name!r}")
        return path

    def begin(self, name: str, limit: int) -> Upload:
        """A new upload for `name`, capped at `limit` bytes."""
        check_name(name)
        self.root.mkdir(parents=True, exist_ok=True)
        return Upload(Path(tempfile.mkdtemp(dir=self.root, prefix=_STAGING_PREFIX)), limit)

    def commit(
        self,
        name: str,
        upload: Upload,
        options: ImageOptions | None = None,
        limits: UnpackLimits | None = None,
    ) -> DatasetManifest:
        """Parses a finished upload and publishes it as `name`. On any failure nothing is left."""
        try:
            manifest = prepare(name, upload, options or ImageOptions(), limits)
            upload.disown()
            self._publish(name, upload.staging)
        except BaseException:
            upload.discard()
            raise
        return manifest

    def _publish(self, name: str, staging: Path) -> None:
        if self.exists(name):
            raise DatasetExists(f"a dataset named {name!r} exists; delete it first")
        try:
            os.rename(staging, self.root / name)
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise DatasetExists(f"a dataset named {name!r} exists; delete it first") from None
            raise

    def delete(self, name: str) -> None:
        """Removes a dataset: renamed away first so nobody sees half of one."""
        directory = self._stored(name)
        if not (directory / MANIFEST_FILE).is_file():
            raise DatasetNotFound(f"no dataset named {name!r}")
        trash = Path(tempfile.mkdtemp(dir=self.root, prefix=_TRASH_PREFIX))
        try:
            os.rename(directory, trash / name)
        except FileNotFoundError:
            raise DatasetNotFound(f"no dataset named {name!r}") from None
        finally:
            shutil.rmtree(trash, ignore_errors=True)

    def sweep(self, older_than_s: float = 86_400.0) -> int:
        """Removes staging and trash directories a crashed process left behind: at once when
        their owner is gone, else once nothing in them has changed for `older_than_s`; returns
        how many it removed."""
        if not self.root.is_dir():
            return 0
        leftovers = (
            entry
            for entry in self.root.iterdir()
            if entry.name.startswith((_STAGING_PREFIX, _TRASH_PREFIX))
        )
        return remove_stale_dirs(leftovers, older_than_s)

    def total_bytes(self) -> int:
        """Bytes the stored datasets take on disk (data and manifests)."""
        total = 0
        for name in self.names():
            for file in (DATA_FILE, MANIFEST_FILE):
                with contextlib.suppress(OSError):
                    total += (self.root / name / file).stat().st_size
        return total
