"""Zip archives opened defensively, for uploads nobody vouches for.

Before any member is read, the central directory is checked against `UnpackLimits`: how many
entries, how large each one and all together unpack, and how far each one compresses (a zip bomb
is a small entry that inflates enormously). Names that are absolute or climb with '..', links and
other special files, encrypted and duplicate entries are refused. Members are only ever read into
memory, never extracted by their own names, so no name can reach the file system.
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from app.datasets.arrays import DatasetError

_DRIVE = re.compile(r"^[A-Za-z]:")
_SEPARATORS = re.compile(r"[\\/]")
_READ_CHUNK = 1 << 20


class UnsafeArchive(DatasetError):
    """The archive breaks a safety rule or a limit; the message names the entry."""


@dataclass(frozen=True)
class UnpackLimits:
    """How much an upload may unpack to. `max_ratio` applies to entries larger than
    `ratio_floor_bytes`: tiny files legitimately compress far better than big ones."""

    max_entries: int = 200_000
    max_entry_bytes: int = 1 << 30
    max_total_bytes: int = 2 << 30
    max_ratio: float = 100.0
    ratio_floor_bytes: int = 1 << 20

    def inflate_limit(self, compressed_bytes: int, budget: int) -> int:
        """The most bytes a compressed stream inside the archive (a gzipped member) may inflate
        to: the per-entry limit and the ratio limit applied to the stream itself, within what
        is left of the total `budget`."""
        by_ratio = max(self.ratio_floor_bytes, int(compressed_bytes * self.max_ratio))
        return max(0, min(self.max_entry_bytes, by_ratio, budget))


def is_junk(name: str) -> bool:
    """Desktop clutter zip tools add (`__MACOSX/`, `.DS_Store`, `._x`), skipped rather than refused."""
    parts = [part for part in _SEPARATORS.split(name) if part not in ("", ".")]
    return any(part == "__MACOSX" or part.startswith(".") for part in parts)


def _check_name(name: str) -> None:
    if not name or name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise UnsafeArchive(f"zip entry {name!r} has an absolute path")
    if ".." in _SEPARATORS.split(name):
        raise UnsafeArchive(f"zip entry {name!r} climbs out of the archive with '..'")


def _check_entry(info: zipfile.ZipInfo, limits: UnpackLimits) -> None:
    for name in {info.filename, info.orig_filename}:
        _check_name(name)
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise UnsafeArchive(f"zip entry {info.filename!r} is a symbolic link")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UnsafeArchive(f"zip entry {info.filename!r} is not a regular file")
    if info.flag_bits & 0x1:
        raise UnsafeArchive(f"zip entry {info.filename!r} is encrypted")
    if info.file_size > limits.max_entry_bytes:
        raise UnsafeArchive(
            f"zip entry {info.filename!r} unpacks to {info.file_size} bytes, "
            f"past the limit of {limits.max_entry_bytes}"
        )
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > limits.ratio_floor_bytes and ratio > limits.max_ratio:
        raise UnsafeArchive(
            f"zip entry {info.filename!r} compresses {ratio:.0f}:1, past the limit of "
            f"{limits.max_ratio:.0f}:1 (a zip bomb?)"
        )


class SafeZip:
    """A checked zip archive; use as a context manager."""

    def __init__(self, path: Path, limits: UnpackLimits) -> None:
        self.limits = limits
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            raise DatasetError(f"the zip is damaged or truncated: {error}") from None
        try:
            self.members = self._checked_members()
        except BaseException:
            self._zip.close()
            raise

    def _checked_members(self) -> list[zipfile.ZipInfo]:
        infos = self._zip.infolist()
        if len(infos) > self.limits.max_entries:
            raise UnsafeArchive(
                f"the zip has {len(infos)} entries, past the limit of {self.limits.max_entries}"
            )
        seen: set[str] = set()
        total = 0
        for info in infos:
            _check_entry(info, self.limits)
            if info.filename in seen:
                raise UnsafeArchive(f"zip entry {info.filename!r} appears twice")
            seen.add(info.filename)
            total += info.file_size
            if total > self.limits.max_total_bytes:
                raise UnsafeArchive(
                    f"the zip unpacks to more than {self.limits.max_total_bytes} bytes"
                )
        return [i for i in infos if not i.is_dir() and not is_junk(i.filename)]

    def head(self, info: zipfile.ZipInfo, size: int) -> bytes:
        """The first `size` bytes of a member (to tell what it holds)."""
        return self._read(info, size)

    def read(self, info: zipfile.ZipInfo) -> bytes:
        """A whole member, CRC-checked; never more than its checked size."""
        return self._read(info, None)

    def _read(self, info: zipfile.ZipInfo, size: int | None) -> bytes:
        want = info.file_size if size is None else min(size, info.file_size)
        chunks: list[bytes] = []
        got = 0
        try:
            with self._zip.open(info) as handle:
                while got < want:
                    chunk = handle.read(min(_READ_CHUNK, want - got))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    got += len(chunk)
                if size is None and handle.read(1):
                    raise UnsafeArchive(f"zip entry {info.filename!r} is larger than it declares")
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as error:
            raise DatasetError(f"zip entry {info.filename!r} is damaged: {error}") from None
        return b"".join(chunks)

    def close(self) -> None:
        """Closes the archive."""
        self._zip.close()

    def __enter__(self) -> SafeZip:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
