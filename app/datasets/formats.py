"""Uploaded dataset files -> ImageDataset, the format told by the content, never by a name.

| content starts with         | format                                                        |
| --------------------------- | ------------------------------------------------------------- |
| `PK\\x03\\x04` (or empty zip) | a zip: of `.npy` members (`.npz`: `images`, optional `labels`), |
|                             | of IDX files (images files, each with its labels file or none, |
|                             | raw or gzipped: MNIST's four .gz files as downloaded), or of  |
|                             | PNG/JPEG images (see imagezip.py)                             |
| `\\x1f\\x8b`                  | gzip of an IDX images file (or of a `.npy`)                   |
| `\\x93NUMPY`                 | `.npy` of images                                              |
| `00 00 08 03`               | IDX images, as MNIST ships them                               |

Torch-free: the API validates uploads with it.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.datasets.arrays import DatasetError, ImageDataset, make_dataset
from app.datasets.idx import GZIP_MAGIC, gunzip, gzip_head, idx_ndim, parse_idx
from app.datasets.imagezip import ImageOptions, is_image, read_image_zip
from app.datasets.npyfile import NPY_MAGIC, load_npy_bytes, load_npy_file
from app.datasets.safezip import SafeZip, UnpackLimits

ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
_HEAD = 64
# Compressed bytes read to tell what a gzipped zip member holds: a gzip header carries the file's
# name, and a deflate block's Huffman tables can take hundreds of bytes before the first byte
# of output (MNIST's own .gz files need about 100).
_GZIP_HEAD = 1 << 16
# An IDX file's name without what tells images from labels: MNIST's "train-images-idx3-ubyte"
# and "train-labels-idx1-ubyte" both become "train--ubyte", which pairs them.
_IDX_ROLE = re.compile(r"(images|labels)(-idx\d)?", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedDataset:
    """A dataset read from an upload, the format it came in, and its class names (if any)."""

    dataset: ImageDataset
    format: str
    class_names: list[str] | None = None


def sniff(head: bytes) -> str | None:
    """'zip', 'gzip', 'npy', 'idx' or 'image' from a file's first bytes; None when unknown."""
    if head.startswith(ZIP_MAGICS):
        return "zip"
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(NPY_MAGIC):
        return "npy"
    if idx_ndim(head) is not None:
        return "idx"
    if is_image(head):
        return "image"
    return None


def read_dataset(
    path: Path, options: ImageOptions | None = None, limits: UnpackLimits | None = None
) -> ParsedDataset:
    """Reads an uploaded file; DatasetError (with a message for a person) when it cannot."""
    options = options or ImageOptions()
    limits = limits or UnpackLimits()
    with open(path, "rb") as handle:
        head = handle.read(_HEAD)
    kind = sniff(head)
    if not head:
        raise DatasetError("the upload is empty")
    if kind == "zip":
        parsed = _read_zip(path, options, limits)
    elif kind == "gzip":
        with open(path, "rb") as handle:
            parsed = _read_single(gunzip(handle, limits.max_total_bytes, "the upload"), ".gz")
    elif kind == "npy":
        parsed = ParsedDataset(make_dataset(load_npy_file(path, "the upload")), "npy")
    elif kind == "idx":
        parsed = _read_single(path.read_bytes(), "")
    elif kind == "image":
        raise DatasetError("the upload is a single image; send a zip of images")
    else:
        raise DatasetError(
            "the upload is not a dataset format: send a zip (of PNG/JPEG images, of IDX files, "
            "or an .npz), an .npy, or an IDX images file (optionally gzipped)"
        )
    if (options.resize or options.channels) and parsed.format != "image-zip":
        raise DatasetError(f"resize and channels apply to zips of images, not to {parsed.format}")
    return _checked(parsed)


def _checked(parsed: ParsedDataset) -> ParsedDataset:
    labels = parsed.dataset.labels
    if labels is not None and labels.size and labels.min() < 0:
        raise DatasetError("labels must be non-negative integers")
    return parsed


def _read_single(data: bytes | bytearray, suffix: str) -> ParsedDataset:
    kind = sniff(bytes(data[:_HEAD]))
    if kind == "npy":
        return ParsedDataset(make_dataset(load_npy_bytes(data, "the upload")), "npy" + suffix)
    if kind != "idx":
        raise DatasetError("a gzipped upload must hold an IDX images file or an .npy")
    array = parse_idx(data, "the upload")
    if array.ndim == 1:
        raise DatasetError(
            "the upload is an IDX labels file; send a zip holding the images file and its labels file"
        )
    return ParsedDataset(make_dataset(array), "idx" + suffix)


def _member_kind(archive: SafeZip, info: zipfile.ZipInfo) -> str | None:
    head = archive.head(info, _HEAD)
    kind = sniff(head)
    if kind == "gzip" and idx_ndim(gzip_head(archive.head(info, _GZIP_HEAD))) is not None:
        return "idx"
    return kind


def _read_zip(path: Path, options: ImageOptions, limits: UnpackLimits) -> ParsedDataset:
    with SafeZip(path, limits) as archive:
        members = archive.members
        if not members:
            raise DatasetError("the zip holds no files: the dataset would be empty")
        kinds = {info.filename: _member_kind(archive, info) for info in members}
        found = set(kinds.values())
        if found == {"npy"}:
            return _read_npz(archive, members)
        if "idx" in found:
            return _read_idx_zip(archive, members, kinds)
        if found == {"image"}:
            dataset, classes = read_image_zip(archive, members, options)
            return ParsedDataset(dataset, "image-zip", classes)
        odd = next(name for name, kind in kinds.items() if kind != "image")
        raise DatasetError(
            f"{odd} is not a PNG or JPEG image: a zip must hold images, IDX files or .npy arrays"
        )


def _read_npz(archive: SafeZip, members: list[zipfile.ZipInfo]) -> ParsedDataset:
    arrays = {}
    for info in members:
        key = info.filename.removesuffix(".npy")
        if key in {"images", "labels"}:
            arrays[key] = load_npy_bytes(archive.read(info), info.filename)
    if "images" not in arrays:
        names = sorted(info.filename for info in members)
        raise DatasetError(f"the .npz has no 'images' array (it has {names})")
    return ParsedDataset(make_dataset(arrays["images"], arrays.get("labels")), "npz")


def _read_idx_zip(
    archive: SafeZip, members: list[zipfile.ZipInfo], kinds: dict[str, str | None]
) -> ParsedDataset:
    """Every images file of the zip with its labels file (paired by name, as MNIST names them:
    its four .gz files give the training and the test images together), or all without labels."""
    images: list[tuple[str, np.ndarray]] = []
    labels: dict[str, tuple[str, np.ndarray]] = {}
    budget = archive.limits.max_total_bytes
    for info in sorted(members, key=lambda member: member.filename):
        if kinds[info.filename] != "idx":
            raise DatasetError(f"{info.filename} is not an IDX file; the zip holds IDX files")
        data: bytes | bytearray = archive.read(info)
        if data.startswith(GZIP_MAGIC):
            limit = archive.limits.inflate_limit(len(data), budget)
            data = gunzip(bytes(data), limit, info.filename)
        budget -= len(data)
        array = parse_idx(data, info.filename)
        if array.ndim == 1:
            labels[_idx_pair_key(info.filename)] = (info.filename, array)
        else:
            images.append((info.filename, array))
    if not images:
        raise DatasetError(f"the zip holds only IDX labels files ({sorted(labels)}), no images")
    pairs = _pair_idx(images, labels)
    if len({array.shape[1:] for array, _ in pairs}) > 1:
        shapes = {name: list(array.shape[1:]) for name, array in images}
        raise DatasetError(f"the zip's IDX images files differ in image size: {shapes}")
    image_array = np.concatenate([array for array, _ in pairs])
    label_arrays = [found for _, found in pairs if found is not None]
    label_array = np.concatenate(label_arrays) if label_arrays else None
    return ParsedDataset(make_dataset(image_array, label_array), "idx-zip")


def _idx_pair_key(name: str) -> str:
    return _IDX_ROLE.sub("", name.rsplit("/", 1)[-1]).lower()


def _pair_idx(
    images: list[tuple[str, np.ndarray]], labels: dict[str, tuple[str, np.ndarray]]
) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """(images, labels) for each images file: all labelled, or (several, unlabelled) none."""
    if not labels:
        return [(array, None) for _, array in images]
    if len(images) == 1 and len(labels) == 1:  # one of each: a pair whatever their names
        labels = {_idx_pair_key(images[0][0]): next(iter(labels.values()))}
    pairs: list[tuple[np.ndarray, np.ndarray | None]] = []
    for name, array in images:
        found = labels.pop(_idx_pair_key(name), None)
        if found is None:
            raise DatasetError(
                f"no labels file in the zip goes with {name} (named as MNIST names them: "
                "train-images-idx3-ubyte and train-labels-idx1-ubyte)"
            )
        label_name, label_array = found
        if len(label_array) != len(array):
            raise DatasetError(
                f"{label_name} has {len(label_array)} labels for the {len(array)} images of {name}"
            )
        pairs.append((array, label_array))
    if labels:
        extra = sorted(name for name, _ in labels.values())
        raise DatasetError(f"{extra} in the zip go with no IDX images file")
    return pairs
