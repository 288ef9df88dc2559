"""The model repository: names, atomic publishing, versions and the default."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.repository.manifest import ImageSpec, Manifest
from app.repository.store import ModelNotFound, ModelRepository
from app.storage.files import InvalidName, check_name


def manifest() -> Manifest:
    return Manifest(
        name="x", version=0, latent_dim=2, image=ImageSpec(height=4, width=4, channels=1),
        likelihood="bernoulli", created_at=datetime.now(UTC).isoformat(),
    )  # fmt: skip


def publish(repository: ModelRepository, name: str, make_default: bool = True) -> int:
    staging = repository.staging_dir(name)
    (staging / "encoder.onnx").write_bytes(b"graph")
    return repository.publish(name, staging, manifest(), make_default=make_default)


@pytest.mark.parametrize("name", ["", "UPPER", "../etc", "a/b", ".hidden", "x" * 65, "sp ace"])
def test_names_that_could_be_paths_are_refused(name: str) -> None:
    with pytest.raises(InvalidName):
        check_name(name)


def test_publishing_numbers_versions_and_records_hashes(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path)
    assert publish(repository, "m") == 1
    assert publish(repository, "m") == 2
    assert repository.versions("m") == [1, 2]
    assert repository.default_version("m") == 2
    stored = repository.manifest("m", 2)
    assert stored.name == "m" and stored.version == 2
    assert set(stored.files) == {"encoder.onnx"} and len(stored.files["encoder.onnx"]) == 64
    assert not list((tmp_path / "m").glob(".staging-*"))


def test_the_default_can_be_chosen_and_survives_new_versions(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path)
    publish(repository, "m")
    publish(repository, "m", make_default=False)
    assert repository.default_version("m") == 1
    repository.set_default("m", 2)
    assert repository.default_version("m") == 2
    with pytest.raises(ModelNotFound):
        repository.set_default("m", 9)


def test_half_written_versions_are_invisible(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path)
    publish(repository, "m")
    (tmp_path / "m" / "2").mkdir()  # no manifest yet: not a version
    repository.staging_dir("m")
    assert repository.versions("m") == [1]
    assert repository.names() == ["m"]


def test_deleting_a_version(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path)
    publish(repository, "m")
    publish(repository, "m")
    repository.delete_version("m", 2)
    assert repository.versions("m") == [1]
    assert repository.default_version("m") == 1
    with pytest.raises(ModelNotFound):
        repository.delete_version("m", 2)


def test_a_deleted_versions_number_is_never_issued_again(tmp_path: Path) -> None:
    """A cache entry or a replica keyed on name:3 must never meet different weights as name:3."""
    repository = ModelRepository(tmp_path)
    for _ in range(3):
        publish(repository, "m")
    repository.set_default("m", 1)
    repository.delete_version("m", 3)
    shutil.rmtree(tmp_path / "m" / "2")  # behind the repository's back, too
    assert repository.versions("m") == [1]
    assert publish(repository, "m") == 4
    assert repository.last_issued("m") == 4


def test_a_number_taken_by_a_leftover_directory_is_skipped(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path)
    publish(repository, "m")
    (tmp_path / "m" / "2").mkdir()
    (tmp_path / "m" / "2" / "stray").write_text("not a version")
    assert publish(repository, "m") == 3
