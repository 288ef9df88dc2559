"""`.npy` arrays from untrusted bytes: the header is checked against the size before numpy
allocates anything, so a ten-byte file cannot ask for a terabyte. Pickles are never loaded."""

from __future__ import annotations

import io
from math import prod
from pathlib import Path
from typing import BinaryIO

import numpy as np

from app.datasets.arrays import DatasetError

NPY_MAGIC = b"\x93NUMPY"


def _check_header(handle: BinaryIO, size: int, name: str) -> None:
    try:
        version = np.lib.format.read_magic(handle)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
        else:
            raise DatasetError(f"{name} is .npy format {version}; save it as format 1.0 or 2.0")
    except (ValueError, EOFError) as error:
        raise DatasetError(f"{name} has no readable .npy header: {error}") from None
    if dtype.hasobject:
        raise DatasetError(f"{name} holds Python objects; send numbers")
    expected = handle.tell() + prod(shape) * dtype.itemsize
    if size != expected:
        raise DatasetError(
            f"{name} is {'truncated' if size < expected else 'longer than its header says'}: "
            f"shape {list(shape)} of {dtype} needs {expected} bytes, it has {size}"
        )


def load_npy_bytes(data: bytes | bytearray, name: str) -> np.ndarray:
    """A .npy file held in memory."""
    _check_header(io.BytesIO(data), len(data), name)
    return _load(io.BytesIO(data), name)


def load_npy_file(path: Path, name: str) -> np.ndarray:
    """A .npy file on disk."""
    with open(path, "rb") as handle:
        _check_header(handle, path.stat().st_size, name)
        handle.seek(0)
        return _load(handle, name)


def _load(handle: BinaryIO, name: str) -> np.ndarray:
    try:
        array = np.load(handle, allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        raise DatasetError(f"{name} is not a readable .npy array: {error}") from None
    if not isinstance(array, np.ndarray):
        raise DatasetError(f"{name} is not a .npy array")
    return array
