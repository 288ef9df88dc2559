"""What every model repository does, on a directory (store.ModelRepository) or on an object
store (object_repository.ObjectModelRepository): the interface training, jobs and the CLI use."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from app.repository.manifest import Manifest


class Repository(Protocol):
    """Names, versions, manifests, `DEFAULT`, atomic publish and version numbers never reused."""

    def names(self) -> list[str]:
        """Model names with at least one published version."""
        ...

    def versions(self, name: str) -> list[int]:
        """Published versions of a model, oldest first."""
        ...

    def manifest(self, name: str, version: int) -> Manifest:
        """The parsed manifest of one version (ModelNotFound when it is not published)."""
        ...

    def default_version(self, name: str) -> int | None:
        """The version DEFAULT names, else the newest one."""
        ...

    def set_default(self, name: str, version: int) -> None:
        """Makes `version` the one that answers for `name`."""
        ...

    def staging_dir(self, name: str, owner: str | None = None) -> Path:
        """A fresh local directory to build a new version in, for `publish`, named after its
        `owner` (a job id) when given."""
        ...

    def discard_staging(self, staging: Path) -> None:
        """Removes an unpublished staging directory."""
        ...

    def discard_owned(self, owner: str) -> int:
        """Removes every staging directory `owner` left; returns how many."""
        ...

    def sweep(
        self, owner_alive: Callable[[str], bool], older_than_s: float = 86_400.0
    ) -> Sequence[object]:
        """Removes what dead publishers left (staging of owners not alive, uncommitted files
        older than `older_than_s`); returns what it removed."""
        ...

    def publish(
        self,
        name: str,
        staging: Path,
        manifest: Manifest,
        make_default: bool = True,
        before_commit: Callable[[int], None] | None = None,
    ) -> int:
        """Publishes the files in `staging` as the next version of `name` and returns its
        number. One commit point: a reader sees all of the version or none of it;
        `before_commit(version)` runs just before it, told the number about to be committed,
        and may raise to refuse (nothing is published)."""
        ...

    def last_issued(self, name: str) -> int:
        """The highest version number ever issued for `name` (0 when none)."""
        ...

    def delete_version(self, name: str, version: int) -> None:
        """Removes a published version (its number is never issued again)."""
        ...

    def export_version(self, name: str, version: int, target: Path) -> None:
        """Copies a version's files, its manifest included, into the new directory `target`."""
        ...

    def import_version(self, name: str, version: int, source: Path) -> bool:
        """Publishes the version directory `source` (manifest included) under its own number;
        False, storing nothing, when this repository has issued that number already."""
        ...
