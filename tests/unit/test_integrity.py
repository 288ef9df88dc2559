"""FileHashes: a version's files checked against its manifest, each file read once while it stays
unchanged (under whatever path it is renamed to), and never waited for past the timeout."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest

from app.repository import integrity
from app.repository.integrity import FileHashes, VersionDamaged, within


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The files hashed by reading them, in order."""
    done: list[Path] = []
    real = integrity.sha256_of

    def counting(path: Path) -> str:
        done.append(path)
        return real(path)

    monkeypatch.setattr(integrity, "sha256_of", counting)
    return done


def test_matching_files_are_verified_and_their_hashes_returned(tmp_path: Path) -> None:
    (tmp_path / "a.onnx").write_bytes(b"graph")
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "x.png").write_bytes(b"png")
    expected = {"a.onnx": _sha(b"graph"), "report/x.png": _sha(b"png")}
    assert FileHashes().verify(tmp_path, expected, 1.0) == expected


@pytest.mark.parametrize(
    ("damage", "reason", "says"),
    [
        ("appended", "mismatch", "does not match the sha256"),
        ("missing", "missing", "a.onnx is missing"),
        ("fifo", "unreadable", "not a regular file"),
    ],
)
def test_a_damaged_file_is_refused_with_its_reason(
    tmp_path: Path, damage: str, reason: str, says: str
) -> None:
    path = tmp_path / "a.onnx"
    if damage == "appended":
        path.write_bytes(b"graph" + b"\0")
    elif damage == "fifo":
        os.mkfifo(path)  # a reader would wait for a writer for ever
    with pytest.raises(VersionDamaged, match=says) as refused:
        FileHashes().verify(tmp_path, {"a.onnx": _sha(b"graph")}, 1.0)
    assert refused.value.reason == reason


def test_an_unchanged_file_is_read_once_even_renamed(tmp_path: Path, reads: list[Path]) -> None:
    staging = tmp_path / ".staging"
    staging.mkdir()
    (staging / "a.onnx").write_bytes(b"graph")
    hashes = FileHashes()
    assert hashes.sha256(staging / "a.onnx") == _sha(b"graph")  # the mirror's check
    staging.rename(tmp_path / "1")
    hashes.verify(tmp_path / "1", {"a.onnx": _sha(b"graph")}, 1.0)  # the registry's
    hashes.verify(tmp_path / "1", {"a.onnx": _sha(b"graph")}, 1.0)
    assert reads == [staging / "a.onnx"]


def test_a_file_rewritten_in_place_is_read_again(tmp_path: Path, reads: list[Path]) -> None:
    path = tmp_path / "a.onnx"
    path.write_bytes(b"graph")
    hashes = FileHashes()
    hashes.sha256(path)
    path.write_bytes(b"grapH")  # same size, same inode
    with pytest.raises(VersionDamaged, match="does not match"):
        hashes.verify(tmp_path, {"a.onnx": _sha(b"graph")}, 1.0)
    assert len(reads) == 2


def test_a_read_that_never_ends_is_given_up_after_the_timeout() -> None:
    release = threading.Event()
    try:
        with pytest.raises(TimeoutError):
            within(0.05, lambda: release.wait(60))
    finally:
        release.set()
    assert within(None, lambda: 7) == 7
    with pytest.raises(ValueError, match="raised in the thread"):
        within(1.0, lambda: int("raised in the thread"))
