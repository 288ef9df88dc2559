"""Image datasets as arrays: reading `.npz` / `.npy` files, normalising layout, splitting, binarizing.

Torch-free, so the API can validate uploads with the same code the trainer reads them with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

MAX_CHANNELS = 4


class DatasetError(ValueError):
    """The data cannot be used as an image dataset; the message says why."""


@dataclass(frozen=True)
class ImageDataset:
    """Images as uint8 [N, C, H, W] (or float32 in [0, 1]) with optional integer labels [N]."""

    images: NDArray[np.uint8] | NDArray[np.float32]
    labels: NDArray[np.int64] | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of one image."""
        _, c, h, w = self.images.shape
        return int(c), int(h), int(w)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def as_float(self) -> NDArray[np.float32]:
        """Pixel intensities in [0, 1] as float32 [N, C, H, W]."""
        if self.images.dtype == np.uint8:
            return self.images.astype(np.float32) / 255.0
        return self.images.astype(np.float32)

    def split(self, holdout: int, seed: int = 0) -> tuple[ImageDataset, ImageDataset]:
        """A (train, held-out) split with a seeded permutation."""
        order = np.random.default_rng(seed).permutation(len(self))
        test, train = order[:holdout], order[holdout:]
        return self._take(train), self._take(test)

    def _take(self, index: NDArray[np.int64]) -> ImageDataset:
        labels = None if self.labels is None else self.labels[index]
        return ImageDataset(self.images[index], labels)


def to_nchw(images: np.ndarray) -> np.ndarray:
    """Accepts [N,H,W], [N,H,W,C] or [N,C,H,W] (C <= 4) and returns [N,C,H,W]."""
    if images.ndim == 3:
        return images[:, None, :, :]
    if images.ndim != 4:
        raise DatasetError(f"images must have 3 or 4 axes, got shape {list(images.shape)}")
    if images.shape[1] <= MAX_CHANNELS:
        return images
    if images.shape[3] <= MAX_CHANNELS:
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    raise DatasetError(f"cannot tell the channel axis of shape {list(images.shape)}")


def normalise_images(images: np.ndarray) -> NDArray[np.uint8] | NDArray[np.float32]:
    """uint8 stays uint8; floats must lie in [0, 1]; anything else is refused."""
    images = to_nchw(np.asarray(images))
    if len(images) == 0:
        raise DatasetError("the dataset holds no images")
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind == "f":
        values = images.astype(np.float32)
        if not np.isfinite(values).all():
            raise DatasetError("images contain NaN or infinite values")
        if values.min() < 0.0 or values.max() > 1.0:
            raise DatasetError("float images must lie in [0, 1]")
        return values
    if images.dtype.kind in "iu" and images.min() >= 0 and images.max() <= 255:
        return images.astype(np.uint8)
    raise DatasetError(f"unsupported pixel type {images.dtype}")


def make_dataset(images: np.ndarray, labels: np.ndarray | None = None) -> ImageDataset:
    """Validates and wraps arrays as an ImageDataset."""
    pixels = normalise_images(images)
    if labels is None:
        return ImageDataset(pixels)
    labels = np.asarray(labels)
    if labels.shape != (len(pixels),) or labels.dtype.kind not in "iu":
        raise DatasetError(
            f"labels must be {len(pixels)} integers, got {labels.dtype} {list(labels.shape)}"
        )
    return ImageDataset(pixels, labels.astype(np.int64))


NPY_MAGIC = b"\x93NUMPY"
NPZ_MAGIC = b"PK"  # an .npz is a zip of .npy members


def arrays_format(path: Path) -> str:
    """'npy' or 'npz', told by the file's first bytes; DatasetError, saying what to send, for
    any other file (checked before a training starts, not after its first epoch)."""
    with open(path, "rb") as handle:
        magic = handle.read(len(NPY_MAGIC))
    if magic == NPY_MAGIC:
        return "npy"
    if magic.startswith(NPZ_MAGIC):
        return "npz"
    raise DatasetError(
        f"{path.name} is not a dataset format this reads: send an .npz (arrays 'images' and "
        "optional 'labels') or an .npy of images; zips of images and IDX files are read by "
        "an upload (PUT /datasets/{name}), which stores them as an .npz"
    )


def load_arrays(path: Path) -> ImageDataset:
    """Reads a `.npz` (arrays `images` and optional `labels`) or a `.npy` of images;
    DatasetError, saying what to send, for any other file."""
    if arrays_format(path) == "npy":
        return make_dataset(np.load(path, allow_pickle=False))
    with np.load(path, allow_pickle=False) as archive:
        if "images" not in archive:
            raise DatasetError(f"the .npz has no 'images' array (it has {sorted(archive.files)})")
        labels = archive.get("labels", None)
        return make_dataset(archive["images"], labels)


def binarize(images: NDArray[np.float32], rng: np.random.Generator) -> NDArray[np.float32]:
    """One Bernoulli draw per pixel with the pixel's intensity as probability."""
    return (rng.random(images.shape, dtype=np.float32) < images).astype(np.float32)
