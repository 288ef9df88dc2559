"""The commit claim names the version about to be committed, before the commit: the file
repository tells `before_commit` the number before its rename (the next one when another
publisher took it), a local job's gate keeps it beside its state, and `published_as` says whether
the repository holds it, so a backend can judge a job whose process died in between."""

from __future__ import annotations

import threading
from multiprocessing.sharedctypes import Value
from pathlib import Path

from app.jobs.transaction import CANCEL, COMMIT, OPEN, LocalGate, published_as
from app.repository.manifest import Manifest
from app.repository.store import ModelRepository


def manifest() -> Manifest:
    image = {"height": 4, "width": 4, "channels": 1}
    fields = {"latent_dim": 2, "image": image, "likelihood": "bernoulli", "created_at": "now"}
    return Manifest.model_validate({"name": "m", "version": 0, **fields})


def shared_integer() -> object:
    """What the local backend shares with a child, under a thread lock (no process here)."""
    return Value("q", 0, lock=threading.RLock())


def staged(repository: ModelRepository) -> Path:
    staging = repository.staging_dir("m", "0123456789abcdef0123456789abcdef")
    (staging / "encoder.onnx").write_bytes(b"graph")
    return staging


def test_before_commit_is_told_the_version_before_the_rename(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "models")
    told: list[tuple[int, bool]] = []

    def before_commit(version: int) -> None:
        told.append((version, repository.version_dir("m", version).exists()))

    assert repository.publish("m", staged(repository), manifest(), False, before_commit) == 1
    assert told == [(1, False)]


def test_a_number_taken_meanwhile_is_claimed_again_for_the_next(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "models")
    told: list[int] = []

    def before_commit(version: int) -> None:
        told.append(version)
        if version == 1:  # another publisher renames its version 1 into place first
            repository.version_dir("m", 1).mkdir(parents=True)
            (repository.version_dir("m", 1) / "x").write_text("x")

    assert repository.publish("m", staged(repository), manifest(), False, before_commit) == 2
    assert told == [1, 2]


def test_a_local_gate_keeps_the_version_its_commit_claim_named() -> None:
    gate = LocalGate(shared_integer())
    assert gate.state == OPEN and gate.committing_version is None
    assert gate.claim_commit(7) and gate.state == COMMIT and gate.committing_version == 7
    assert not gate.claim_cancel() and gate.committing_version == 7
    assert gate.claim_commit(8) and gate.committing_version == 8
    cancelled = LocalGate(shared_integer())
    assert cancelled.claim_cancel() and not cancelled.claim_commit(1)
    assert cancelled.state == CANCEL and cancelled.committing_version is None


def test_published_as_asks_the_repository(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "models")
    repository.publish("m", staged(repository), manifest(), False)
    assert published_as(repository, "m", 1) == 1
    assert published_as(repository, "m", 2) is None  # claimed, died before the rename
    assert published_as(repository, "m", None) is None  # never claimed
    assert published_as(repository, "other", 1) is None
