"""A zip of PNG/JPEG images as a dataset: class subfolders become labels.

Images of different sizes or channel counts are never silently mixed: without an explicit
`resize` or `channels` option the first image that differs is refused by name.

Labels come from the folder that directly holds each image, below the deepest folder all images
share (so `digits/0/a.png`, `digits/1/b.png` give classes "0" and "1"). Images are either all at
that level (no labels) or all one class folder down; anything else is refused. Classes are
sorted by name, numerically when every name is a number, and label i is the i-th class.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from app.datasets.arrays import DatasetError, ImageDataset, make_dataset
from app.datasets.safezip import SafeZip, UnsafeArchive

IMAGE_MAGICS = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff")
MAX_IMAGE_PIXELS = 4096 * 4096
CHANNEL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_NATIVE_CHANNELS = {"1": 1, "L": 1, "LA": 2, "La": 2, "PA": 4, "RGB": 3, "YCbCr": 3, "CMYK": 3,
                    "RGBA": 4, "RGBa": 4}  # fmt: skip


@dataclass(frozen=True)
class ImageOptions:
    """`resize` (width, height) resizes every image; `channels` converts every image."""

    resize: tuple[int, int] | None = None
    channels: int | None = None


def is_image(head: bytes) -> bool:
    """True when the bytes start like a PNG or a JPEG."""
    return head.startswith(IMAGE_MAGICS)


def _class_key(name: str) -> tuple[int, int, str]:
    return (0, int(name), name) if name.isdigit() else (1, 0, name)


def folder_labels(names: list[str]) -> tuple[list[str] | None, list[int] | None]:
    """(class names, a label per image) from the images' folders; (None, None) without folders."""
    parents = [PurePosixPath(n.replace("\\", "/")).parent.parts for n in names]
    common = parents[0]
    for parts in parents[1:]:
        while parts[: len(common)] != common:
            common = common[:-1]
    below = [parts[len(common) :] for parts in parents]
    if all(len(parts) == 0 for parts in below):
        return None, None
    for name, parts in zip(names, below, strict=True):
        if len(parts) != 1:
            where = "/".join(common) or "the top of the zip"
            raise DatasetError(
                f"{name} is not directly in a class folder: images must all be directly in "
                f"{where} (no labels) or all one folder below it (the folder is the label)"
            )
    classes = sorted({parts[0] for parts in below}, key=_class_key)
    index = {c: i for i, c in enumerate(classes)}
    return classes, [index[parts[0]] for parts in below]


def _native_channels(image: Image.Image) -> int:
    if image.mode == "P":
        return 4 if "transparency" in image.info else 3
    if image.mode not in _NATIVE_CHANNELS:
        raise DatasetError(
            f"pixel mode {image.mode} is not supported; save 8-bit gray, RGB or RGBA"
        )
    return _NATIVE_CHANNELS[image.mode]


class _Decoder:
    """Decodes images one by one into a [N, C, H, W] array, holding them to the first one's
    size and channels unless the options say otherwise."""

    def __init__(self, count: int, options: ImageOptions, max_bytes: int) -> None:
        self.count = count
        self.options = options
        self.max_bytes = max_bytes
        self.first: tuple[str, tuple[int, int], int] | None = None
        self.out: np.ndarray | None = None

    def add(self, i: int, name: str, data: bytes) -> None:
        try:
            with Image.open(io.BytesIO(data), formats=("PNG", "JPEG")) as image:
                pixels = self._convert(name, image)
        except DatasetError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise UnsafeArchive(f"{name} is refused: {error}") from None
        except UnidentifiedImageError as error:
            raise DatasetError(f"{name} is not a readable PNG or JPEG image: {error}") from None
        except (OSError, SyntaxError, ValueError) as error:
            raise DatasetError(f"{name} is damaged or truncated: {error}") from None
        if self.out is None:
            shape = (self.count, *pixels.shape)
            if np.prod(shape) > self.max_bytes:
                raise UnsafeArchive(
                    f"{self.count} images of {list(pixels.shape)} take {np.prod(shape)} bytes, "
                    f"past the limit of {self.max_bytes}"
                )
            self.out = np.empty(shape, dtype=np.uint8)
        self.out[i] = pixels

    def _convert(self, name: str, image: Image.Image) -> np.ndarray:
        if image.format not in {"PNG", "JPEG"}:
            raise DatasetError(f"{name} is {image.format}, not PNG or JPEG")
        if image.width * image.height > MAX_IMAGE_PIXELS:
            raise UnsafeArchive(f"{name} is {image.width}x{image.height}, too many pixels")
        size, channels = image.size, _native_channels(image)
        if self.first is None:
            self.first = (name, size, channels)
        first_name, first_size, first_channels = self.first
        target_size = self.options.resize or first_size
        target_channels = self.options.channels or first_channels
        if size != target_size and self.options.resize is None:
            raise DatasetError(
                f"{name} is {size[0]}x{size[1]} but {first_name} is {first_size[0]}x{first_size[1]}: "
                "all images must share one size; pass resize=WxH to resize them all"
            )
        if channels != target_channels and self.options.channels is None:
            raise DatasetError(
                f"{name} has {channels} channel(s) ({image.mode}) but {first_name} has "
                f"{first_channels}: pass channels=1, 3 or 4 to convert them all"
            )
        converted = image.convert(CHANNEL_MODES[target_channels])
        if converted.size != target_size:
            converted = converted.resize(target_size, Image.Resampling.LANCZOS)
        pixels = np.asarray(converted, dtype=np.uint8)
        return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def read_image_zip(
    archive: SafeZip, members: list[zipfile.ZipInfo], options: ImageOptions
) -> tuple[ImageDataset, list[str] | None]:
    """The images of `members` (sorted by name) and their folder labels."""
    if not members:
        raise DatasetError("the zip holds no images: the dataset would be empty")
    members = sorted(members, key=lambda info: info.filename)
    names = [info.filename for info in members]
    classes, labels = folder_labels(names)
    decoder = _Decoder(len(members), options, archive.limits.max_total_bytes)
    for i, info in enumerate(members):
        data = archive.read(info)
        if not is_image(data[:8]):
            raise DatasetError(f"{info.filename} is not a PNG or JPEG image")
        decoder.add(i, info.filename, data)
    assert decoder.out is not None
    return make_dataset(decoder.out, None if labels is None else np.asarray(labels)), classes
