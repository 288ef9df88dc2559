"""The model repository on disk: models/<name>/<version>/ with a manifest, and models/<name>/DEFAULT.

Versions appear whole or not at all: they are written into a hidden sibling directory and renamed.
A version number is never issued twice, even after its version is deleted (models/<name>/LAST_VERSION
keeps the highest one issued): caches and replicas key on name and number.

Publishing is a transaction with one commit point: the rename of the staging directory. Before
it, `before_commit` may still refuse (a cancelled job) and nothing is left; after it the version
exists whatever follows: recording LAST_VERSION is best effort (the directory is the record), and
moving DEFAULT is the caller's separate step. A staging directory carries its owner (a job id),
so `discard_staging` and `sweep` can remove what a dead job left behind.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from app.repository.integrity import FileHashes
from app.repository.manifest import Manifest
from app.storage.files import (
    NAME_PATTERN,
    check_name,
    read_stored_manifest,
    sha256_of,
    stored_names,
    write_atomic,
)

MANIFEST = "manifest.json"
DEFAULT_FILE = "DEFAULT"
LAST_VERSION_FILE = "LAST_VERSION"
STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".deleting-"
OWNER_PATTERN = re.compile(r"^[0-9a-f]{32}$")
TEMP_FILE_AGE_S = 60.0
logger = logging.getLogger(__name__)


class ModelNotFound(LookupError):
    """No model of that name, or not that version of it (404): the repository's answer and the
    registry's alike."""


def _stored_name(name: str) -> str:
    """`name` for a lookup: a name that can never be stored names no model (ModelNotFound)."""
    if not NAME_PATTERN.fullmatch(name):
        raise ModelNotFound(f"no model named {name!r} (names are 1-64 lowercase letters, "
                           "digits, '-' or '_')")  # fmt: skip
    return name


def _owner_of(entry: str) -> str | None:
    """The job id in a staging directory's name (`.staging-<job id>-<random>`), if any."""
    owner = entry.removeprefix(STAGING_PREFIX).split("-", 1)[0]
    return owner if OWNER_PATTERN.fullmatch(owner) else None


def _has_manifest(directory: Path) -> bool:
    """Whether a version directory holds its manifest (the commit); an entry that cannot be
    read is logged and left out, so it never fails the listing of the others."""
    try:
        return (directory / MANIFEST).is_file()
    except OSError as error:
        logger.warning("skipping %s: it cannot be read (%s)", directory, error)
        return False


def version_number(text: str) -> int | None:
    """The version a directory or key segment names: a number in ASCII digits written the way
    the repository writes it ('12', not '012'); None for anything else. (`str.isdigit` is true
    of '²' too, which `int` refuses: one such folder must not fail the scan of every model.)"""
    if not (text.isascii() and text.isdigit()) or str(int(text)) != text:
        return None
    return int(text)


def file_hashes(directory: Path) -> dict[str, str]:
    """sha256 of every file of a version but its manifest, keyed by relative path."""
    return {
        p.relative_to(directory).as_posix(): sha256_of(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")
    }


class ModelRepository:
    """Reads and writes the model repository rooted at `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # what its files hash to, remembered while they are unchanged: a version loaded again,
        # or downloaded and checked by the object-store mirror, is not read twice
        self.hashes = FileHashes()

    def names(self) -> list[str]:
        """Model names with at least one published version."""
        return stored_names(self.root, lambda directory: bool(self.versions(directory.name)))

    def versions(self, name: str) -> list[int]:
        """Published versions of a model, oldest first."""
        directory = self.root / _stored_name(name)
        if not directory.is_dir():
            return []
        found = ((version_number(p.name), p) for p in directory.iterdir())
        return sorted(v for v, p in found if v is not None and _has_manifest(p))

    def version_dir(self, name: str, version: int) -> Path:
        """The directory of one version."""
        return self.root / _stored_name(name) / str(int(version))

    def manifest(self, name: str, version: int) -> Manifest:
        """The parsed manifest of one version."""
        path = self.version_dir(name, version) / MANIFEST
        try:
            return read_stored_manifest(Manifest, path, f"model {name} version {version}")
        except (FileNotFoundError, NotADirectoryError):
            raise ModelNotFound(f"model {name} has no version {version}") from None

    def default_version(self, name: str) -> int | None:
        """The version DEFAULT names, else the newest one."""
        versions = self.versions(name)
        if not versions:
            return None
        marker = self.root / name / DEFAULT_FILE
        try:
            chosen = int(marker.read_text().strip())
        except (OSError, ValueError):
            return versions[-1]
        return chosen if chosen in versions else versions[-1]

    def set_default(self, name: str, version: int) -> None:
        """Makes `version` the one that answers for `name`."""
        if version not in self.versions(name):
            raise ModelNotFound(f"model {name} has no version {version}")
        write_atomic(self.root / name / DEFAULT_FILE, f"{version}\n")

    def staging_dir(self, name: str, owner: str | None = None) -> Path:
        """A fresh hidden directory beside the versions to build a new one in, named after its
        `owner` (a job id: 32 hex digits) when given."""
        parent = self.root / check_name(name)
        prefix = STAGING_PREFIX if owner is None else f"{STAGING_PREFIX}{owner}-"
        for attempt in range(2):
            parent.mkdir(parents=True, exist_ok=True)
            try:
                return Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
            except FileNotFoundError:  # a sweep removed the empty model directory meanwhile
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def discard_staging(self, staging: Path) -> None:
        """Removes an unpublished staging directory, and its model's directory if that is now
        empty (a first version that never came)."""
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):
            staging.parent.rmdir()  # only when empty

    def discard_owned(self, owner: str) -> int:
        """Removes every staging directory `owner` (a job id) left, wherever; returns how many."""
        removed = 0
        for staging in self.root.glob(f"*/{STAGING_PREFIX}{owner}-*"):
            self.discard_staging(staging)
            removed += 1
        return removed

    def sweep(
        self, owner_alive: Callable[[str], bool], older_than_s: float = 86_400.0
    ) -> list[Path]:
        """What dead publishers left: staging directories of owners not alive, ownerless ones
        and half-deleted versions unchanged for `older_than_s`, temp files of DEFAULT and
        LAST_VERSION older than a minute, and model directories left empty. Returns them."""
        if not self.root.is_dir():
            return []
        now = time.time()
        removed: list[Path] = []
        for model in [p for p in self.root.iterdir() if NAME_PATTERN.fullmatch(p.name)]:
            with contextlib.suppress(OSError):
                for entry in list(model.iterdir()):
                    if self._is_leftover(entry, owner_alive, now, older_than_s):
                        if entry.is_dir():
                            shutil.rmtree(entry, ignore_errors=True)
                        else:
                            entry.unlink(missing_ok=True)
                        removed.append(entry)
                if model.is_dir() and not any(model.iterdir()):
                    model.rmdir()
                    removed.append(model)
        return removed

    @staticmethod
    def _is_leftover(
        entry: Path, owner_alive: Callable[[str], bool], now: float, older_than_s: float
    ) -> bool:
        name = entry.name
        age = now - entry.stat().st_mtime
        if name.startswith(STAGING_PREFIX):
            owner = _owner_of(name)
            return not owner_alive(owner) if owner is not None else age > older_than_s
        if name.startswith(TRASH_PREFIX):
            return age > older_than_s
        if name.startswith((f".{DEFAULT_FILE}.", f".{LAST_VERSION_FILE}.")):
            return age > TEMP_FILE_AGE_S
        return False

    def publish(
        self,
        name: str,
        staging: Path,
        manifest: Manifest,
        make_default: bool = True,
        before_commit: Callable[[int], None] | None = None,
    ) -> int:
        """Writes the manifest (with file hashes) into `staging` and renames it to the next
        version: the commit point. `before_commit(version)` runs just before the rename, told
        the number it is about to commit, and may raise to refuse (nothing is published); when
        another publisher takes that number first it is told the next one. After the rename the
        version exists: a failure to record LAST_VERSION is logged, not raised; a failure to
        move DEFAULT (with `make_default`) raises."""
        files = file_hashes(staging)
        issued = self.last_issued(name)
        while True:
            version = max(max(self.versions(name), default=0), issued) + 1
            manifest = manifest.model_copy(
                update={"name": name, "version": version, "files": files}
            )
            (staging / MANIFEST).write_text(manifest.model_dump_json(indent=2) + "\n")
            if before_commit is not None:
                before_commit(version)
            try:
                os.rename(staging, self.version_dir(name, version))
                break
            except OSError:
                if not self.version_dir(name, version).exists():
                    raise
                issued = version  # another publisher took this number first: try the next one
        if version > self.last_issued(name):
            try:
                write_atomic(self.root / name / LAST_VERSION_FILE, f"{version}\n")
            except OSError as error:  # the version directory itself records the number
                logger.error("published %s version %d; LAST_VERSION not written: %s",
                             name, version, error)  # fmt: skip
        if make_default:
            self.set_default(name, version)
        return version

    def last_issued(self, name: str) -> int:
        """The highest version number ever published for `name` (0 when unrecorded)."""
        try:
            return int((self.root / check_name(name) / LAST_VERSION_FILE).read_text().strip())
        except (OSError, ValueError):
            return 0

    def export_version(self, name: str, version: int, target: Path) -> None:
        """Copies a version's directory (manifest included) to the new directory `target`."""
        if version not in self.versions(name):
            raise ModelNotFound(f"model {name} has no version {version}")
        shutil.copytree(self.version_dir(name, version), target)

    def import_version(self, name: str, version: int, source: Path) -> bool:
        """Publishes the version directory `source` under its own number, unless that number has
        been issued here (False): copied into a staging directory, then renamed into place."""
        if version in self.versions(name) or version <= self.last_issued(name):
            return False
        staging = self.staging_dir(name)
        try:
            shutil.copytree(source, staging, dirs_exist_ok=True)
            os.rename(staging, self.version_dir(name, version))
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if self.version_dir(name, version).exists():
                return False
            raise
        if version > self.last_issued(name):
            write_atomic(self.root / name / LAST_VERSION_FILE, f"{version}\n")
        return True

    def delete_version(self, name: str, version: int) -> None:
        """Removes a version: renamed away first so readers never see half a directory."""
        directory = self.version_dir(name, version)
        if not directory.is_dir():
            raise ModelNotFound(f"model {name} has no version {version}")
        trash = directory.with_name(f"{TRASH_PREFIX}{version}-{os.getpid()}")
        os.rename(directory, trash)
        shutil.rmtree(trash, ignore_errors=True)
