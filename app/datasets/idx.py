"""IDX files as MNIST ships them (http://yann.lecun.com/exdb/mnist/), and capped gunzip.

An IDX file is a big-endian header, `0x00 0x00 <type> <ndim>` and then `ndim` 32-bit sizes,
followed by the values in row-major order: 0x00000803 is a file of images [N, H, W] of unsigned
bytes, 0x00000801 a file of labels [N].
"""

from __future__ import annotations

import gzip
import io
import zlib
from math import prod
from typing import BinaryIO

import numpy as np

from app.datasets.arrays import DatasetError
from app.datasets.safezip import UnsafeArchive

GZIP_MAGIC = b"\x1f\x8b"
IDX_TYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}
_MAX_NDIM = 4
_CHUNK = 1 << 20


def idx_ndim(head: bytes) -> int | None:
    """The number of axes an IDX header declares, or None when `head` is not one."""
    if len(head) < 4 or head[0] != 0 or head[1] != 0 or head[2] not in IDX_TYPES:
        return None
    ndim = head[3]
    return ndim if 1 <= ndim <= _MAX_NDIM else None


def parse_idx(data: bytes | bytearray, name: str) -> np.ndarray:
    """The array an IDX file holds, in native byte order; the size must match the header exactly."""
    ndim = idx_ndim(bytes(data[:4]))
    if ndim is None:
        raise DatasetError(f"{name} is not an IDX file")
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DatasetError(f"{name} is truncated inside its IDX header")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_TYPES[data[2]])
    expected = offset + prod(dims) * dtype.itemsize
    if len(data) < expected:
        raise DatasetError(
            f"{name} is truncated: its header {list(dims)} needs {expected} bytes, it has {len(data)}"
        )
    if len(data) > expected:
        raise DatasetError(
            f"{name} has {len(data) - expected} bytes past what its header describes"
        )
    array = np.frombuffer(data, dtype=dtype, count=prod(dims), offset=offset).reshape(dims)
    return array if dtype.itemsize == 1 else array.astype(dtype.newbyteorder("="))


def gunzip(source: bytes | BinaryIO, limit: int, name: str) -> bytearray:
    """Decompresses gzip data, refusing output past `limit` bytes (a gzip bomb)."""
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    out = bytearray()
    try:
        with gzip.GzipFile(fileobj=stream, mode="rb") as handle:
            while chunk := handle.read(_CHUNK):
                out += chunk
                if len(out) > limit:
                    raise UnsafeArchive(f"{name} decompresses past the limit of {limit} bytes")
    except (gzip.BadGzipFile, zlib.error, EOFError, OSError) as error:
        raise DatasetError(f"{name} is not a complete gzip stream: {error}") from None
    return out


def gzip_head(head: bytes, size: int = 16) -> bytes:
    """The first bytes a gzip stream decompresses to, from its first bytes (b'' if unreadable)."""
    try:
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, size)
    except zlib.error:
        return b""
