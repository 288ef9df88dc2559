"""Dataset files built in memory for tests: IDX, gzip, zips of images, .npy/.npz, hostile zips;
and one image as the base64 PNG a client sends."""

from __future__ import annotations

import base64
import gzip
import io
import stat
import struct
import zipfile

import numpy as np
from PIL import Image


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file as MNIST ships them: uint8 images [N,H,W] (0x0803) or labels [N] (0x0801)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def gz(data: bytes) -> bytes:
    """gzip-compressed bytes."""
    return gzip.compress(data, compresslevel=1)


def npy_bytes(array: np.ndarray) -> bytes:
    """A .npy file."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npz_bytes(**arrays: np.ndarray) -> bytes:
    """An .npz file."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)  # type: ignore[arg-type]
    return buffer.getvalue()


def image_bytes(
    size: tuple[int, int] = (8, 8), mode: str = "L", fmt: str = "PNG", value: int = 7
) -> bytes:
    """A PNG or JPEG of `size` (width, height) in `mode`, with a little gradient."""
    channels = len(mode)
    width, height = size
    pixels = (np.arange(width * height * channels) * 3 + value) % 256
    shape = (height, width) if channels == 1 else (height, width, channels)
    image = Image.fromarray(pixels.astype(np.uint8).reshape(shape), mode=mode)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def zip_bytes(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of the given member names and contents."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def symlink_zip(name: str = "link.png", target: str = "/etc/passwd") -> bytes:
    """A zip whose one entry is a symbolic link."""
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(info, target)
    return buffer.getvalue()


def digits(n: int = 12, size: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images [n,size,size] and labels 0..2."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size), dtype=np.uint8)
    return images, (np.arange(n) % 3).astype(np.uint8)


def idx_zip(n: int = 12, gzipped: bool = True) -> bytes:
    """A zip of an IDX images file and its labels file, named as MNIST names them."""
    images, labels = digits(n)
    wrap = gz if gzipped else (lambda data: data)
    suffix = ".gz" if gzipped else ""
    return zip_bytes(
        {
            f"train-images-idx3-ubyte{suffix}": wrap(idx_bytes(images)),
            f"train-labels-idx1-ubyte{suffix}": wrap(idx_bytes(labels)),
        }
    )


def mnist_gz(name: str, array: np.ndarray) -> bytes:
    """An IDX file gzipped as MNIST's downloads are: best compression, its name in the header."""
    buffer = io.BytesIO()
    with gzip.GzipFile(name, "wb", compresslevel=9, fileobj=buffer, mtime=0) as handle:
        handle.write(idx_bytes(array))
    return buffer.getvalue()


def mnist_download_zip(images: np.ndarray, labels: np.ndarray, test: int) -> bytes:
    """A zip of MNIST's own four .gz files, as people download them: the last `test` images
    and labels are the t10k files, the rest the train files."""
    cut = len(images) - test
    return zip_bytes(
        {
            "train-images-idx3-ubyte.gz": mnist_gz("train-images-idx3-ubyte", images[:cut]),
            "train-labels-idx1-ubyte.gz": mnist_gz("train-labels-idx1-ubyte", labels[:cut]),
            "t10k-images-idx3-ubyte.gz": mnist_gz("t10k-images-idx3-ubyte", images[cut:]),
            "t10k-labels-idx1-ubyte.gz": mnist_gz("t10k-labels-idx1-ubyte", labels[cut:]),
        }
    )


def class_zip(
    per_class: int = 3, classes: tuple[str, ...] = ("cat", "dog"), prefix: str = ""
) -> bytes:
    """A zip of PNGs in class folders."""
    return zip_bytes(
        {
            f"{prefix}{name}/{i}.png": image_bytes(value=i + 10 * c)
            for c, name in enumerate(classes)
            for i in range(per_class)
        }
    )


def png_b64(digit: np.ndarray) -> str:
    """One uint8 [H, W] grey image as the base64 PNG a client sends."""
    buffer = io.BytesIO()
    Image.fromarray(digit.astype(np.uint8), mode="L").save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()
