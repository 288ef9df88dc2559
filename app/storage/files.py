"""Files the server stores itself, for the model repository and the dataset store alike: the
names they may have, manifests read back, hashes, and whole-file atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
StoredModel = TypeVar("StoredModel", bound=BaseModel)


class InvalidName(ValueError):
    """A name that can never be stored (a model's or a dataset's): not 1-64 lowercase letters,
    digits, '-' or '_', so never a path either."""


class CorruptStoredFile(RuntimeError):
    """A file the server wrote itself (a model's or a dataset's manifest) cannot be read back:
    a fault of the server's own storage, never of the request that came across it."""


def check_name(name: str) -> str:
    """Model and dataset names: lowercase letters, digits, '-' and '_' (never a path)."""
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidName(f"invalid name {name!r}: use 1-64 lowercase letters, digits, '-' or '_'")
    return name


def read_stored_manifest(schema: type[StoredModel], path: Path, what: str) -> StoredModel:
    """Parses a manifest the server stored itself; CorruptStoredFile (naming `what`) when it does
    not parse, FileNotFoundError when it is gone."""
    text = path.read_text()
    try:
        return schema.model_validate_json(text)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise CorruptStoredFile(
            f"the server's stored manifest of {what} is unreadable ({where}: {first['msg']}); "
            "the fault is in the server's files, not in the request"
        ) from error


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read into one reused buffer (`hashlib.file_digest`): a third faster
    than reading it in fresh chunks, which in a fresh process is most of a small model's cost."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def write_atomic(path: Path, data: str | bytes) -> None:
    """Replaces `path` with `data` whole; on any failure (a full disk) no temp file stays."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def stored_names(root: Path, stored: Callable[[Path], bool]) -> list[str]:
    """The sorted names of the directories under `root` that are valid names and hold something
    stored (`stored(directory)`): the listing of the model repository and of the dataset store."""
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if NAME_PATTERN.fullmatch(p.name) and stored(p))
