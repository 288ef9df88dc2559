"""The model repository on an S3-compatible object store: the same layout as on disk, under the
store's prefix, with two rules that make it safe for many hosts at once.

```
<name>/<version>/<file>...       the version's files (graphs, weights, report), uploaded first
<name>/<version>/manifest.json   the commit: put last, create-only (If-None-Match: *)
<name>/claims/<version>          the number's claim, put create-only before anything else
                                 (empty; "seed" when seeding made it; "deleted" once deleted)
<name>/DEFAULT                   the default version's number
```

A version is published when, and only when, its manifest exists: readers list manifests, so no
reader ever sees half a version, and a publish that fails before its manifest (the store went
away, the process died) leaves only files nobody lists (`sweep` removes them later). A number is
issued by a create-only put of its claim: two workers publishing the same model at once claim
different numbers (the loser of a race takes the next one), and since claims are never deleted
no number is issued twice, even after its version is deleted.

Seeding (an api filling an empty store with the shipped models) keeps the shipped numbers and
marks its claims "seed": a store that holds nothing but seeds is still being seeded, so a seed
that failed halfway (the store blinked, the replica died) is finished by the next replica to
pull instead of leaving its numbers spent on nothing. Replicas seeding at once upload the same
bytes and the create-only manifest commits each version once. Once anything else claims a
number (a publish) or a seeded version is deleted, the store is never seeded again.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.repository.manifest import Manifest
from app.repository.store import (
    DEFAULT_FILE,
    MANIFEST,
    ModelNotFound,
    file_hashes,
    version_number,
)
from app.storage.files import NAME_PATTERN, CorruptStoredFile, check_name
from app.storage.objects import ObjectExists, ObjectInfo, ObjectStore

CLAIMS = "claims"
SEED_CLAIM = b"seed"  # the body of a claim seeding made
DELETED_CLAIM = b"deleted"  # the body of a claim whose version was deleted: never seeded again
LOCAL_STAGING = "vae-staging-"  # local staging directories, in the temporary directory
_OWNER = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class ModelListing:
    """One model as a single listing of the store saw it."""

    manifests: dict[int, ObjectInfo] = field(default_factory=dict)  # committed versions
    files: dict[int, list[ObjectInfo]] = field(default_factory=dict)  # every version's objects
    claims: set[int] = field(default_factory=set)
    seed_claims: set[int] = field(default_factory=set)  # claims seeding made
    default: ObjectInfo | None = None


def _parse_listing(objects: list[ObjectInfo]) -> dict[str, ModelListing]:
    models: dict[str, ModelListing] = {}
    for info in objects:
        name, _, rest = info.key.partition("/")
        if not NAME_PATTERN.fullmatch(name) or not rest:
            continue
        model = models.setdefault(name, ModelListing())
        head, _, tail = rest.partition("/")
        version = version_number(head)
        claim = version_number(tail) if head == CLAIMS else None
        if version is not None and tail:
            model.files.setdefault(version, []).append(info)
            if tail == MANIFEST:
                model.manifests[version] = info
        elif claim is not None:
            model.claims.add(claim)
            if info.size == len(SEED_CLAIM):  # told by its size: no GET a claim
                model.seed_claims.add(claim)
        elif rest == DEFAULT_FILE:
            model.default = info
    return models


def holds_only_seeds(listing: dict[str, ModelListing]) -> bool:
    """Whether only seeding ever claimed a number in the listed store (true of an empty one)."""
    return all(model.claims == model.seed_claims for model in listing.values())


def parse_manifest(data: bytes, what: str) -> Manifest:
    """A stored manifest; CorruptStoredFile when it does not parse."""
    try:
        return Manifest.model_validate_json(data)
    except ValueError as error:
        raise CorruptStoredFile(
            f"the server's stored manifest of {what} is unreadable: {error}"
        ) from None


class ObjectModelRepository:
    """Reads and writes the model repository kept in `store` (see the module's docstring)."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    def __str__(self) -> str:
        return str(self.store)

    # ---- reading -------------------------------------------------------------------------
    def listing(self) -> dict[str, ModelListing]:
        """Every model as one listing of the store sees it (one paged LIST call)."""
        return _parse_listing(self.store.objects())

    def names(self) -> list[str]:
        """Model names with at least one published version."""
        return sorted(name for name, model in self.listing().items() if model.manifests)

    def _model(self, name: str) -> ModelListing:
        if not NAME_PATTERN.fullmatch(name):
            raise ModelNotFound(f"no model named {name!r}")
        return _parse_listing(self.store.objects(f"{name}/")).get(name, ModelListing())

    def versions(self, name: str) -> list[int]:
        """Published versions of a model, oldest first."""
        if not NAME_PATTERN.fullmatch(name):
            return []
        return sorted(self._model(name).manifests)

    def manifest_bytes(self, name: str, version: int) -> bytes:
        """A version's manifest as stored; ModelNotFound when it is not published."""
        try:
            return self.store.get(f"{check_name(name)}/{int(version)}/{MANIFEST}")
        except FileNotFoundError:
            raise ModelNotFound(f"model {name} has no version {version}") from None

    def manifest(self, name: str, version: int) -> Manifest:
        """The parsed manifest of one version."""
        data = self.manifest_bytes(name, version)
        return parse_manifest(data, f"model {name} version {version}")

    def default_version(self, name: str) -> int | None:
        """The version DEFAULT names, else the newest one."""
        versions = self.versions(name)
        if not versions:
            return None
        try:
            chosen = int(self.store.get(f"{name}/{DEFAULT_FILE}").decode().strip())
        except (FileNotFoundError, ValueError):
            return versions[-1]
        return chosen if chosen in versions else versions[-1]

    def last_issued(self, name: str) -> int:
        """The highest version number ever claimed for `name` (0 when none)."""
        model = self._model(check_name(name))
        return max([*model.claims, *model.files], default=0)

    # ---- writing -------------------------------------------------------------------------
    def set_default(self, name: str, version: int) -> None:
        """Makes `version` the one that answers for `name` (one small overwrite)."""
        if version not in self.versions(name):
            raise ModelNotFound(f"model {name} has no version {version}")
        self.store.put(f"{name}/{DEFAULT_FILE}", f"{version}\n".encode())

    def staging_dir(self, name: str, owner: str | None = None) -> Path:
        """A fresh local directory to build a version in (uploaded and removed by publish),
        named after its `owner` (a job id) when given."""
        check_name(name)
        prefix = LOCAL_STAGING if owner is None else f"{LOCAL_STAGING}{owner}-"
        return Path(tempfile.mkdtemp(prefix=prefix))

    def discard_staging(self, staging: Path) -> None:
        """Removes an unpublished local staging directory."""
        shutil.rmtree(staging, ignore_errors=True)

    def discard_owned(self, owner: str) -> int:
        """Removes the local staging directories `owner` (a job id) left; returns how many."""
        found = list(Path(tempfile.gettempdir()).glob(f"{LOCAL_STAGING}{owner}-*"))
        for staging in found:
            self.discard_staging(staging)
        return len(found)

    def claim(self, name: str, version: int, mark: bytes = b"") -> bool:
        """Claims one version number (a create-only put of `mark`); False when it was issued
        already."""
        try:
            self.store.put(f"{check_name(name)}/{CLAIMS}/{int(version)}", mark, create=True)
        except ObjectExists:
            return False
        return True

    def claim_next(self, name: str) -> int:
        """Issues the next version number of `name`: the one after the highest claimed, or the
        next free one when another publisher claimed it meanwhile."""
        version = self.last_issued(name) + 1
        while not self.claim(name, version):
            version += 1
        return version

    def _upload_files(self, name: str, version: int, directory: Path) -> None:
        for path in sorted(directory.rglob("*")):
            relative = path.relative_to(directory).as_posix()
            if path.is_file() and path.name != MANIFEST and not path.name.startswith("."):
                self.store.upload(f"{name}/{version}/{relative}", path)

    def _commit(self, name: str, version: int, manifest: bytes) -> None:
        """The one commit point: the manifest, put create-only, makes the version published. If
        it fails, the version's files are left where they are (the put may still land: see
        ObjectStore.commit); `sweep_store` removes them if it never does."""
        self.store.commit(f"{name}/{version}/{MANIFEST}", manifest)

    def _abandon(self, name: str, version: int) -> None:
        """Best effort after a failed publish: removes the uncommitted files (if the store is
        unreachable they stay, unlisted, for `sweep`); the claim stays, the number is spent."""
        with contextlib.suppress(Exception):
            keys = [info.key for info in self.store.objects(f"{name}/{version}/")]
            if f"{name}/{version}/{MANIFEST}" not in keys:
                self.store.delete(keys)

    def publish(
        self,
        name: str,
        staging: Path,
        manifest: Manifest,
        make_default: bool = True,
        before_commit: Callable[[int], None] | None = None,
    ) -> int:
        """Claims the next number, uploads the files, then commits the manifest (create-only):
        the version is published at that put and not before. `before_commit(version)` runs
        once the files are up, just before the commit, and may raise to refuse (the uploaded files are
        removed; the claimed number stays spent; a commit that failed leaves them: see
        `_commit`). DEFAULT moves after the commit, with
        `make_default`. The local `staging` directory is removed either way."""
        try:
            files = file_hashes(staging)
            version = self.claim_next(name)
            manifest = manifest.model_copy(
                update={"name": name, "version": version, "files": files}
            )
            try:
                self._upload_files(name, version, staging)
                if before_commit is not None:
                    before_commit(version)
            except BaseException:
                self._abandon(name, version)
                raise
            self._commit(name, version, (manifest.model_dump_json(indent=2) + "\n").encode())
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        if make_default:
            self.set_default(name, version)
        return version

    def import_version(self, name: str, version: int, source: Path, *, seed: bool = False) -> bool:
        """Publishes the version directory `source` (its manifest as it is) under its own
        number: claimed create-only first, so False when that number was issued here already.
        With `seed`, a number an unfinished seed claimed is taken too (see the module's
        docstring); replicas seeding the same version at once may each return True."""
        manifest = (source / MANIFEST).read_bytes()
        parse_manifest(manifest, f"{source}")
        claimed = self.claim(name, version, SEED_CLAIM if seed else b"")
        if not claimed and not (seed and self._unfinished_seed(name, version)):
            return False
        try:
            self._upload_files(name, version, source)
        except BaseException:
            if not seed:  # a seed's files stay: another replica may be uploading the same
                self._abandon(name, version)
            raise
        try:
            self._commit(name, version, manifest)
        except ObjectExists:
            if seed:
                return False  # another seeder committed a manifest of its own there
            raise
        return True

    def _unfinished_seed(self, name: str, version: int) -> bool:
        """Whether seeding claimed `version` and no manifest committed it yet."""
        try:
            mark = self.store.get(f"{name}/{CLAIMS}/{version}")
        except FileNotFoundError:
            return False
        return mark == SEED_CLAIM and not self.store.exists(f"{name}/{version}/{MANIFEST}")

    def export_version(self, name: str, version: int, target: Path) -> None:
        """Downloads a version (the files its manifest lists, then the manifest) into `target`."""
        manifest_bytes = self.manifest_bytes(name, version)
        manifest = parse_manifest(manifest_bytes, f"model {name} version {version}")
        target.mkdir(parents=True)
        for relative in manifest.files:
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            self.store.download(f"{name}/{version}/{relative}", path)
        (target / MANIFEST).write_bytes(manifest_bytes)

    def delete_version(self, name: str, version: int) -> None:
        """Removes a version: its manifest first (it is unpublished at once, whole), then its
        files. Its claim stays, so the number is never issued again."""
        prefix = f"{check_name(name)}/{int(version)}/"
        try:
            self.store.head(prefix + MANIFEST)
        except FileNotFoundError:
            raise ModelNotFound(f"model {name} has no version {version}") from None
        # the claim says so first: a seed that has not seen the delete must not bring it back
        self.store.put(f"{name}/{CLAIMS}/{int(version)}", DELETED_CLAIM)
        self.store.delete([prefix + MANIFEST])
        self.store.delete([info.key for info in self.store.objects(prefix)])

    def sweep(
        self, owner_alive: Callable[[str], bool], older_than_s: float = 86_400.0
    ) -> list[str]:
        """What dead publishers left on this host: local staging directories of owners not
        alive (ownerless ones once older than `older_than_s`). Local only: the RQ worker calls
        it before it forks (see objects.py); the store's side is `sweep_store`, which api
        replicas run. Returns what it removed."""
        cutoff = time.time() - older_than_s
        removed: list[str] = []
        for staging in Path(tempfile.gettempdir()).glob(f"{LOCAL_STAGING}*"):
            owner = staging.name.removeprefix(LOCAL_STAGING).split("-", 1)[0]
            with contextlib.suppress(OSError):
                dead = (
                    not owner_alive(owner)
                    if _OWNER.fullmatch(owner)
                    else staging.stat().st_mtime < cutoff
                )
                if dead:
                    self.discard_staging(staging)
                    removed.append(str(staging))
        return removed

    def sweep_store(
        self, older_than_s: float = 86_400.0, listing: dict[str, ModelListing] | None = None
    ) -> list[str]:
        """Removes from the store the files of versions never committed (a publish that died
        before its manifest), once all of them are older than `older_than_s`; returns the
        versions' prefixes. `listing` saves a listing the caller has just made."""
        cutoff = time.time() - older_than_s
        removed: list[str] = []
        for name, model in (listing if listing is not None else self.listing()).items():
            for version, objects in model.files.items():
                if version in model.manifests or any(o.modified > cutoff for o in objects):
                    continue
                self.store.delete([o.key for o in objects])
                removed.append(f"{self.store}/{name}/{version}/")
        return removed
