"""A version's files checked against the sha256 its manifest gives, before anything serves them.

Hashes are remembered by the file's identity and state (device, inode, size, mtime, ctime), so
a version loaded again with unchanged files is not read again, and a file checked under one path
(the object-store mirror's download, checked in its staging directory) is known under the path
it is renamed to. A file is read in a thread of its own and waited for at most a timeout: a
FIFO, or a hung network file system, fails its version instead of blocking every other load.
"""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from functools import partial
from pathlib import Path
from typing import Literal, TypeVar

from app.storage.files import sha256_of

Result = TypeVar("Result")
FileState = tuple[int, int, int]  # size, mtime_ns, ctime_ns
Reason = Literal["mismatch", "missing", "unreadable", "timeout"]
PARALLEL_READS = 4  # a version's files hashed at once


class VersionDamaged(RuntimeError):
    """A version's files are not the ones its manifest names: one does not match its sha256,
    is missing, is not a regular file, or could not be read within the timeout."""

    def __init__(self, message: str, reason: Reason) -> None:
        super().__init__(message)
        self.reason = reason


def started(call: Callable[[], Result]) -> Future[Result]:
    """`call()` running in a daemon thread of its own: left to finish or hang on its own, as
    nothing joins it, not even at exit (a pool's threads would be joined, and hang the exit)."""
    future: Future[Result] = Future()

    def run() -> None:
        try:
            future.set_result(call())
        except BaseException as error:  # handed to the waiting caller
            future.set_exception(error)

    threading.Thread(target=run, name="vae-file-read", daemon=True).start()
    return future


def within(timeout_s: float | None, call: Callable[[], Result]) -> Result:
    """`call()`, waited for at most `timeout_s` (TimeoutError past it) when one is given."""
    if timeout_s is None:
        return call()
    return _result(started(call), timeout_s)


def _result(future: Future[Result], timeout_s: float | None) -> Result:
    try:
        return future.result(timeout_s)
    except FutureTimeout:
        raise TimeoutError(f"no answer within {timeout_s:g} s") from None


class FileHashes:
    """sha256 of files, each read once while it stays the same file, unchanged."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, int], tuple[FileState, str]] = {}
        self._lock = threading.Lock()

    def sha256(self, path: Path, timeout_s: float | None = None) -> str:
        """The file's hex sha256; remembered. OSError when it is not a regular file or cannot
        be read; TimeoutError when reading it takes longer than `timeout_s`."""
        return within(timeout_s, lambda: self._sha256(path))

    def _sha256(self, path: Path) -> str:
        before = path.stat()
        if not stat.S_ISREG(before.st_mode):  # a FIFO would block its reader for good
            raise OSError(f"{path.name} is not a regular file")
        identity = (before.st_dev, before.st_ino)
        state = (before.st_size, before.st_mtime_ns, before.st_ctime_ns)
        with self._lock:
            known = self._known.get(identity)
        if known is not None and known[0] == state:
            return known[1]
        digest = sha256_of(path)
        after = path.stat()
        if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == state:  # not written meanwhile
            with self._lock:
                self._known[identity] = (state, digest)
        return digest

    def verify(
        self, directory: Path, expected: Mapping[str, str], timeout_s: float | None = None
    ) -> dict[str, str]:
        """The sha256 of every file `expected` names (relative to `directory`), each read within
        `timeout_s`; VersionDamaged when one differs, is missing or cannot be read."""
        verified: dict[str, str] = {}
        files = sorted(expected.items())
        for first in range(0, len(files), PARALLEL_READS):  # sha256 lets go of the GIL
            wave = files[first : first + PARALLEL_READS]
            reads = [started(partial(self._sha256, directory / relative)) for relative, _ in wave]
            for (relative, digest), read in zip(wave, reads, strict=True):
                verified[relative] = self._checked(relative, digest, read, timeout_s)
        return verified

    @staticmethod
    def _checked(relative: str, digest: str, read: Future[str], timeout_s: float | None) -> str:
        """The file's sha256 once `read` gives it, if it is `digest`; else VersionDamaged."""
        try:
            actual = _result(read, timeout_s)
        except FileNotFoundError:
            raise VersionDamaged(f"{relative} is missing", "missing") from None
        except TimeoutError:
            raise VersionDamaged(
                f"{relative} could not be read within {timeout_s:g} s (VAE_FILE_READ_TIMEOUT_S)",
                "timeout",
            ) from None
        except OSError as error:
            raise VersionDamaged(f"{relative} cannot be read: {error}", "unreadable") from None
        if actual != digest:
            raise VersionDamaged(
                f"{relative} does not match the sha256 its manifest gives (the file has "
                f"{actual[:16]}..., the manifest {digest[:16]}...)",
                "mismatch",
            )
        return actual
