"""An S3-compatible object store under one `s3://bucket/prefix`, through obstore.

The few operations the repositories need: get, download to a file, put (optionally create-only:
`If-None-Match: *`, the commit point of a publish), streamed multipart upload from a file, list,
delete. Credentials and region come from the standard AWS_ variables, the endpoint from
`VAE_S3_ENDPOINT_URL`. Every failure to reach the store (refused, timed out, a 5xx, denied)
becomes one domain error, ObjectStoreUnavailable; a missing key is FileNotFoundError and a
create-only put that lost is ObjectExists.

obstore runs its requests on a Rust (tokio) runtime whose threads do not survive `fork`: a
process that forks (the RQ worker forks a work-horse per job) must not use the store before it
forks. ObjectStore therefore connects lazily, on its first request: the RQ worker's own process
makes the object (to find its staging directories) but never a request; its horses do.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, PreconditionError
from obstore.store import S3Store

from app.storage.locations import ObjectUrl

P = ParamSpec("P")
R = TypeVar("R")

PART_BYTES = 8 * 1024 * 1024  # a multipart upload's part size
PARTS_IN_FLIGHT = 2  # parts uploaded at once: at most 16 MiB of an upload in memory
_DOWNLOAD_CHUNK = 1024 * 1024


class ObjectStoreUnavailable(OSError):
    """The object store could not be reached or refused the request (a 503: it passes). An
    OSError, as a disk that fails is: callers that survive a storage failure survive this."""


class ObjectExists(FileExistsError):
    """A create-only put found its key taken: someone else committed it first."""


@dataclass(frozen=True)
class ObjectInfo:
    """One listed object: its key (relative to the store's prefix), size and ETag."""

    key: str
    size: int
    etag: str | None
    modified: float = 0.0  # seconds since the epoch


@contextlib.contextmanager
def _store_errors() -> Iterator[None]:
    """What the store raises inside becomes its domain error: a missing key stays
    FileNotFoundError, a lost create-only put is ObjectExists, a transport or server error is
    ObjectStoreUnavailable."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (AlreadyExistsError, PreconditionError) as error:
        raise ObjectExists(str(error).splitlines()[0]) from None
    except (BaseError, OSError, ConnectionError, TimeoutError) as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ObjectStoreUnavailable(f"the object store is unavailable: {first}") from None


def _needs_store(method: Callable[P, R]) -> Callable[P, R]:
    """The method's store errors become domain errors (`_store_errors`)."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with _store_errors():
            return method(*args, **kwargs)

    return wrapper


def _from_store(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """`chunks` of a streamed body, the store's errors while streaming made domain errors."""
    iterator = iter(chunks)
    while True:
        with _store_errors():
            chunk = next(iterator, None)
        if chunk is None:
            return
        yield chunk


class ObjectStore:
    """Keys under `url` in the S3-compatible store at `endpoint` (AWS when None)."""

    def __init__(
        self,
        url: ObjectUrl,
        endpoint: str | None = None,
        *,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 2.0,
        retries: int = 2,
    ) -> None:
        self.url = url
        client: dict[str, Any] = {
            "connect_timeout": timedelta(seconds=connect_timeout_s),
            "timeout": timedelta(seconds=timeout_s),
            "allow_http": bool(endpoint and endpoint.startswith("http://")),
        }
        retry: dict[str, Any] = {
            "max_retries": retries,
            "retry_timeout": timedelta(seconds=max(connect_timeout_s * (retries + 1), 5.0)),
            "backoff": {
                "init_backoff": timedelta(milliseconds=100),
                "max_backoff": timedelta(seconds=1),
                "base": 2,
            },
        }
        config: dict[str, Any] = {}
        if endpoint:
            config["endpoint"] = endpoint
        if not os.environ.get("AWS_REGION") and not os.environ.get("AWS_DEFAULT_REGION"):
            config["region"] = "us-east-1"  # S3-compatible stores accept any; AWS needs one
        self._options = {"config": config, "client_options": client, "retry_config": retry}
        self._client: S3Store | None = None

    @property
    def _store(self) -> S3Store:
        """The obstore client, made on first use (see the module's docstring: fork)."""
        if self._client is None:
            self._client = S3Store(
                self.url.bucket,
                prefix=self.url.prefix or None,
                **self._options,  # type: ignore[arg-type]
            )
        return self._client

    def __str__(self) -> str:
        return str(self.url)

    @_needs_store
    def get(self, key: str) -> bytes:
        """The whole object (small ones: manifests, markers)."""
        return bytes(obstore.get(self._store, key).bytes())

    @_needs_store
    def _get(self, key: str) -> obstore.GetResult:
        return obstore.get(self._store, key)

    def download(self, key: str, path: Path) -> ObjectInfo:
        """Streams the object into `path` (written whole or not at all) and returns what it was.
        The store's failures are its domain errors; the local disk's stay plain OSErrors (a
        full disk is not the store being down)."""
        result = self._get(key)
        meta = result.meta
        partial = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.part")
        try:
            with open(partial, "wb") as handle:
                for chunk in _from_store(result.stream(min_chunk_size=_DOWNLOAD_CHUNK)):
                    handle.write(chunk)
            os.replace(partial, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
        return ObjectInfo(key, int(meta["size"]), meta.get("e_tag"))

    @_needs_store
    def put(self, key: str, data: bytes, *, create: bool = False) -> str | None:
        """Writes a small object; with `create`, only when the key is free (ObjectExists when
        taken: `If-None-Match: *`, atomic in the store). Returns its ETag."""
        result = obstore.put(
            self._store, key, data, mode="create" if create else "overwrite", use_multipart=False
        )
        return result.get("e_tag")

    def commit(self, key: str, data: bytes) -> None:
        """A create-only put of `data` that no other writer would write (a manifest: the hashes
        and names in it are its own), the commit point of a publish; ObjectExists when the key
        holds something else. When the put's outcome is unknown (the store failed or timed
        out after it may have applied it; a retry of it found the key taken) the key is read
        back: holding `data`, the put landed. Otherwise the error is raised, and since the put
        may still land, the caller leaves in place what `data` refers to (the sweeps remove
        what no commit ever names)."""
        try:
            self.put(key, data, create=True)
        except (ObjectExists, ObjectStoreUnavailable):
            try:
                if self.get(key) == data:
                    return
            except (FileNotFoundError, ObjectStoreUnavailable):
                pass
            raise

    @_needs_store
    def upload(self, key: str, path: Path) -> None:
        """Streams a file into the store: a multipart upload of PART_BYTES parts past one part,
        never the whole file in memory."""
        with open(path, "rb") as handle:
            obstore.put(
                self._store,
                key,
                handle,
                chunk_size=PART_BYTES,
                max_concurrency=PARTS_IN_FLIGHT,
            )

    @_needs_store
    def objects(self, prefix: str = "") -> list[ObjectInfo]:
        """Every object under `prefix` (recursively), by key."""
        found: list[ObjectInfo] = []
        for page in obstore.list(self._store, prefix or None, chunk_size=1000):
            found.extend(
                ObjectInfo(
                    str(meta["path"]),
                    int(meta["size"]),
                    meta.get("e_tag"),
                    meta["last_modified"].timestamp(),
                )
                for meta in page
            )
        return sorted(found, key=lambda info: info.key)

    @_needs_store
    def delete(self, keys: list[str]) -> None:
        """Deletes objects (a missing one is not an error)."""
        if keys:
            obstore.delete(self._store, keys)

    def exists(self, key: str) -> bool:
        """Whether `key` is stored."""
        try:
            self.head(key)
        except FileNotFoundError:
            return False
        return True

    @_needs_store
    def head(self, key: str) -> ObjectInfo:
        """The object's size and ETag; FileNotFoundError when it is not there."""
        meta = obstore.head(self._store, key)
        return ObjectInfo(key, int(meta["size"]), meta.get("e_tag"))
