"""Uploaded dataset files -> ImageDataset: every format, and every hostile case refused by name."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.datasets.arrays import DatasetError, make_dataset
from app.datasets.formats import ParsedDataset, read_dataset, sniff
from app.datasets.imagezip import ImageOptions, folder_labels
from app.datasets.safezip import UnpackLimits, UnsafeArchive
from tests.support.dataset_builders import (
    class_zip,
    digits,
    gz,
    idx_bytes,
    idx_zip,
    image_bytes,
    mnist_download_zip,
    npy_bytes,
    npz_bytes,
    symlink_zip,
    zip_bytes,
)

MNIST_DIGITS = Path(__file__).resolve().parents[1] / "fixtures" / "mnist-heldout-256.npz"


def read(
    tmp_path: Path,
    data: bytes,
    options: ImageOptions | None = None,
    limits: UnpackLimits | None = None,
) -> ParsedDataset:
    path = tmp_path / "upload"
    path.write_bytes(data)
    return read_dataset(path, options, limits)


def refused(tmp_path: Path, data: bytes, match: str, **kwargs: object) -> DatasetError:
    with pytest.raises(DatasetError, match=match) as caught:
        read(tmp_path, data, **kwargs)  # type: ignore[arg-type]
    return caught.value


# --- sniffing -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (b"PK\x03\x04rest", "zip"),
        (b"PK\x05\x06rest", "zip"),
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"\x93NUMPY\x01\x00", "npy"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x01", "idx"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01", "idx"),
        (b"\x89PNG\r\n\x1a\n", "image"),
        (b"hello", None),
        (b"\x00\x00\x07\x03", None),
    ],
)
def test_sniff_tells_the_format_by_content(head: bytes, kind: str | None) -> None:
    assert sniff(head) == kind


def test_the_name_of_the_file_does_not_matter(tmp_path: Path) -> None:
    images, _ = digits()
    path = tmp_path / "looks-like.zip"
    path.write_bytes(npy_bytes(images))
    assert read_dataset(path).format == "npy"


# --- every format -------------------------------------------------------------------------------


def test_npy_of_images(tmp_path: Path) -> None:
    images, _ = digits()
    parsed = read(tmp_path, npy_bytes(images))
    assert parsed.format == "npy"
    assert parsed.dataset.images.shape == (12, 1, 8, 8)
    np.testing.assert_array_equal(parsed.dataset.images[:, 0], images)
    assert parsed.dataset.labels is None


def test_npz_with_labels(tmp_path: Path) -> None:
    images, labels = digits()
    parsed = read(tmp_path, npz_bytes(images=images, labels=labels))
    assert parsed.format == "npz"
    np.testing.assert_array_equal(parsed.dataset.labels, labels)


def test_npz_of_float_images_without_labels(tmp_path: Path) -> None:
    images = np.random.default_rng(1).random((5, 3, 4, 4)).astype(np.float32)
    parsed = read(tmp_path, npz_bytes(images=images))
    assert parsed.dataset.images.dtype == np.float32
    assert parsed.dataset.shape == (3, 4, 4)


def test_npz_without_images_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, npz_bytes(pixels=np.zeros((2, 4, 4), np.uint8)), "no 'images' array")


def test_npz_with_mismatched_labels_is_refused(tmp_path: Path) -> None:
    images, labels = digits()
    refused(tmp_path, npz_bytes(images=images, labels=labels[:5]), "labels must be 12 integers")


def test_negative_labels_are_refused(tmp_path: Path) -> None:
    images, _ = digits()
    labels = np.full(len(images), -1, dtype=np.int64)
    refused(tmp_path, npz_bytes(images=images, labels=labels), "non-negative")


def test_idx_images_file(tmp_path: Path) -> None:
    images, _ = digits()
    parsed = read(tmp_path, idx_bytes(images))
    assert parsed.format == "idx"
    np.testing.assert_array_equal(parsed.dataset.images[:, 0], images)


def test_idx_gz_images_file(tmp_path: Path) -> None:
    images, _ = digits()
    parsed = read(tmp_path, gz(idx_bytes(images)))
    assert parsed.format == "idx.gz"
    np.testing.assert_array_equal(parsed.dataset.images[:, 0], images)


@pytest.mark.parametrize("gzipped", [True, False])
def test_idx_zip_of_images_and_labels(tmp_path: Path, gzipped: bool) -> None:
    images, labels = digits()
    parsed = read(tmp_path, idx_zip(gzipped=gzipped))
    assert parsed.format == "idx-zip"
    np.testing.assert_array_equal(parsed.dataset.images[:, 0], images)
    np.testing.assert_array_equal(parsed.dataset.labels, labels)


def test_idx_multibyte_values_are_read_big_endian(tmp_path: Path) -> None:
    values = (np.arange(2 * 2 * 2).reshape(2, 2, 2) * 30).astype(">i2")
    data = bytes([0, 0, 0x0B, 3]) + np.array([2, 2, 2], ">u4").tobytes() + values.tobytes()
    parsed = read(tmp_path, data)
    np.testing.assert_array_equal(parsed.dataset.images[:, 0], values.astype(np.int64))


def test_idx_labels_alone_are_refused(tmp_path: Path) -> None:
    _, labels = digits()
    refused(tmp_path, idx_bytes(labels), "labels file")


def test_truncated_idx_is_refused(tmp_path: Path) -> None:
    images, _ = digits()
    refused(tmp_path, idx_bytes(images)[:-5], "truncated")


def test_idx_with_trailing_bytes_is_refused(tmp_path: Path) -> None:
    images, _ = digits()
    refused(tmp_path, idx_bytes(images) + b"junk", "past what its header describes")


def test_truncated_idx_gz_is_refused(tmp_path: Path) -> None:
    images, _ = digits()
    data = gz(idx_bytes(images))
    refused(tmp_path, data[: len(data) // 2], "not a complete gzip stream")


def test_idx_zip_with_label_count_mismatch_is_refused(tmp_path: Path) -> None:
    images, labels = digits()
    data = zip_bytes({"i": idx_bytes(images), "l": idx_bytes(labels[:-1])})
    refused(tmp_path, data, "11 labels for the 12 images")


def test_idx_zip_with_two_unlabelled_images_files_is_both(tmp_path: Path) -> None:
    images, _ = digits()
    data = zip_bytes({"train": idx_bytes(images), "test": idx_bytes(images[:5])})
    parsed = read(tmp_path, data)
    assert parsed.dataset.images.shape[0] == 17 and parsed.dataset.labels is None


def test_a_zip_of_mnists_four_gz_files_is_one_labelled_dataset(tmp_path: Path) -> None:
    """MNIST's downloads as they come (gzip -9, names in the gzip headers): train and t10k
    files, each images file with its labels file."""
    with np.load(MNIST_DIGITS) as stored:
        images, labels = stored["images"], stored["labels"]
    parsed = read(tmp_path, mnist_download_zip(images, labels, test=56))
    assert parsed.format == "idx-zip"
    assert parsed.dataset.images.shape[0] == len(images)
    # t10k sorts before train: the test images come first, each with its own labels
    order = np.concatenate([np.arange(200, 256), np.arange(200)])
    np.testing.assert_array_equal(parsed.dataset.labels, labels[order])
    np.testing.assert_array_equal(parsed.dataset.images, make_dataset(images[order]).images)


def test_an_idx_images_file_whose_labels_are_missing_is_named(tmp_path: Path) -> None:
    images, labels = digits()
    data = zip_bytes(
        {
            "train-images-idx3-ubyte.gz": gz(idx_bytes(images)),
            "train-labels-idx1-ubyte.gz": gz(idx_bytes(labels)),
            "t10k-images-idx3-ubyte.gz": gz(idx_bytes(images)),
        }
    )
    refused(tmp_path, data, "no labels file in the zip goes with t10k-images-idx3-ubyte.gz")


def test_zip_of_images_in_class_folders(tmp_path: Path) -> None:
    parsed = read(tmp_path, class_zip(per_class=3, classes=("dog", "cat")))
    assert parsed.format == "image-zip"
    assert parsed.class_names == ["cat", "dog"]
    assert parsed.dataset.images.shape == (6, 1, 8, 8)
    np.testing.assert_array_equal(parsed.dataset.labels, [0, 0, 0, 1, 1, 1])


def test_numeric_class_folders_sort_as_numbers_below_a_common_folder(tmp_path: Path) -> None:
    data = class_zip(per_class=1, classes=("10", "2", "1"), prefix="mnist_png/training/")
    parsed = read(tmp_path, data)
    assert parsed.class_names == ["1", "2", "10"]
    assert sorted(parsed.dataset.labels.tolist()) == [0, 1, 2]  # type: ignore[union-attr]


def test_zip_of_images_without_folders_has_no_labels(tmp_path: Path) -> None:
    data = zip_bytes({"a.png": image_bytes(), "b.jpg": image_bytes(fmt="JPEG")})
    parsed = read(tmp_path, data)
    assert parsed.dataset.labels is None
    assert parsed.class_names is None
    assert len(parsed.dataset) == 2


def test_rgb_images_keep_three_channels(tmp_path: Path) -> None:
    data = zip_bytes({f"{i}.png": image_bytes(mode="RGB", value=i) for i in range(3)})
    parsed = read(tmp_path, data)
    assert parsed.dataset.shape == (3, 8, 8)


def test_desktop_clutter_is_skipped(tmp_path: Path) -> None:
    data = zip_bytes({"a/1.png": image_bytes(), "__MACOSX/a/._1.png": b"junk", "a/.DS_Store": b"x"})
    assert len(read(tmp_path, data).dataset) == 1


def test_folder_labels_refuse_mixed_depths() -> None:
    with pytest.raises(DatasetError, match=r"top\.png is not directly in a class folder"):
        folder_labels(["cat/1.png", "top.png"])
    with pytest.raises(DatasetError, match=r"deep/er/1\.png"):
        folder_labels(["cat/1.png", "deep/er/1.png"])


def test_dot_slash_names_are_not_clutter(tmp_path: Path) -> None:
    data = zip_bytes({"./cat/1.png": image_bytes(), "./dog/1.png": image_bytes()})
    assert read(tmp_path, data).class_names == ["cat", "dog"]


def test_sixteen_bit_images_are_refused_not_clipped(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4), 1000, np.uint16)).save(buffer, format="PNG")
    refused(tmp_path, zip_bytes({"deep.png": buffer.getvalue()}), "pixel mode I")


def test_a_non_image_in_a_zip_of_images_is_named(tmp_path: Path) -> None:
    data = zip_bytes({"cat/1.png": image_bytes(), "cat/notes.txt": b"hello"})
    refused(tmp_path, data, r"cat/notes\.txt is not a PNG or JPEG")


def test_a_damaged_image_is_named(tmp_path: Path) -> None:
    data = zip_bytes({"a.png": image_bytes((64, 64)), "b.png": image_bytes((64, 64))[:-40]})
    refused(tmp_path, data, r"b\.png is damaged")


def test_a_single_image_is_not_a_dataset(tmp_path: Path) -> None:
    refused(tmp_path, image_bytes(), "single image")


def test_unknown_content_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, b"name,label\nx,1\n", "not a dataset format")


def test_options_only_apply_to_zips_of_images(tmp_path: Path) -> None:
    images, _ = digits()
    refused(
        tmp_path, npy_bytes(images), "apply to zips of images", options=ImageOptions(channels=3)
    )


# --- wrong sizes and mixed channels -------------------------------------------------------------


def test_an_image_of_the_wrong_size_is_refused_by_name(tmp_path: Path) -> None:
    data = zip_bytes({"a.png": image_bytes((8, 8)), "b.png": image_bytes((6, 5))})
    refused(tmp_path, data, r"b\.png is 6x5 but a\.png is 8x8.*resize=WxH")


def test_resize_makes_every_image_one_size(tmp_path: Path) -> None:
    data = zip_bytes({"a.png": image_bytes((8, 8)), "b.png": image_bytes((6, 5))})
    parsed = read(tmp_path, data, options=ImageOptions(resize=(4, 3)))
    assert parsed.dataset.images.shape == (2, 1, 3, 4)


def test_mixed_channels_are_refused_by_name(tmp_path: Path) -> None:
    data = zip_bytes({"a.png": image_bytes(mode="L"), "b.png": image_bytes(mode="RGB")})
    refused(tmp_path, data, r"b\.png has 3 channel\(s\) \(RGB\) but a\.png has 1.*channels=")


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_channels_option_converts_every_image(tmp_path: Path, channels: int) -> None:
    data = zip_bytes(
        {
            "a.png": image_bytes(mode="L"),
            "b.png": image_bytes(mode="RGB"),
            "c.png": image_bytes(mode="RGBA"),
        }
    )
    parsed = read(tmp_path, data, options=ImageOptions(channels=channels))
    assert parsed.dataset.shape == (channels, 8, 8)


# --- empty datasets -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty"),
        (zip_bytes({}), "holds no files"),
        (zip_bytes({"cat/": b""}), "holds no files"),
        (zip_bytes({"__MACOSX/x": b"junk"}), "holds no files"),
        (npz_bytes(images=np.zeros((0, 8, 8), np.uint8)), "no images"),
        (npy_bytes(np.zeros((0, 8, 8), np.uint8)), "no images"),
        (idx_bytes(np.zeros((0, 8, 8), np.uint8)), "no images"),
    ],
    ids=["empty-body", "empty-zip", "only-folders", "only-clutter", "npz", "npy", "idx"],
)
def test_an_empty_dataset_is_refused(tmp_path: Path, data: bytes, match: str) -> None:
    refused(tmp_path, data, match)


# --- hostile and damaged archives ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil.png", "cat/../../evil.png", "..\\evil.png"])
def test_zip_slip_is_refused(tmp_path: Path, name: str) -> None:
    data = zip_bytes({"ok.png": image_bytes(), name: image_bytes()})
    error = refused(tmp_path, data, "climbs out of the archive")
    assert isinstance(error, UnsafeArchive)
    assert not (tmp_path.parent / "evil.png").exists()


@pytest.mark.parametrize("name", ["/etc/evil.png", "C:/evil.png", "\\evil.png"])
def test_absolute_paths_are_refused(tmp_path: Path, name: str) -> None:
    refused(tmp_path, zip_bytes({name: image_bytes()}), "absolute path")


def test_a_symlink_entry_is_refused(tmp_path: Path) -> None:
    refused(tmp_path, symlink_zip(), "symbolic link")


def test_a_zip_bomb_is_refused_before_it_inflates(tmp_path: Path) -> None:
    bomb = zip_bytes({"images.npy": bytes(16 << 20)})
    assert len(bomb) < 100_000
    refused(tmp_path, bomb, r"compresses \d+:1, past the limit")


def test_a_gzip_bomb_is_refused(tmp_path: Path) -> None:
    header = bytes([0, 0, 0x08, 3]) + np.array([4096, 64, 64], ">u4").tobytes()
    bomb = gz(header + bytes(4096 * 64 * 64))
    limits = UnpackLimits(max_total_bytes=1 << 20)
    refused(tmp_path, bomb, "decompresses past the limit", limits=limits)


def test_a_gzip_bomb_inside_an_idx_zip_is_refused(tmp_path: Path) -> None:
    header = bytes([0, 0, 0x08, 3]) + np.array([4096, 64, 64], ">u4").tobytes()
    data = zip_bytes({"images.gz": gz(header + bytes(4096 * 64 * 64))}, zipfile.ZIP_STORED)
    refused(
        tmp_path, data, "decompresses past the limit", limits=UnpackLimits(max_total_bytes=1 << 20)
    )


def test_a_gzipped_member_past_the_ratio_limit_is_refused(tmp_path: Path) -> None:
    """The zip's own limits hold for what a gzipped member inflates to, within the total."""
    header = bytes([0, 0, 0x08, 3]) + np.array([4096, 64, 64], ">u4").tobytes()
    data = zip_bytes({"images.gz": gz(header + bytes(4096 * 64 * 64))}, zipfile.ZIP_STORED)
    refused(tmp_path, data, "images.gz decompresses past the limit")


def test_too_many_entries_are_refused(tmp_path: Path) -> None:
    data = zip_bytes({f"{i}.png": image_bytes() for i in range(5)})
    refused(tmp_path, data, "5 entries, past the limit of 4", limits=UnpackLimits(max_entries=4))


def test_an_entry_too_large_is_refused(tmp_path: Path) -> None:
    small, large = image_bytes((8, 8)), image_bytes((64, 64))
    data = zip_bytes({"a.png": small, "b.png": large})
    limits = UnpackLimits(max_entry_bytes=len(small))
    refused(
        tmp_path, data, rf"b\.png.*unpacks to {len(large)} bytes, past the limit", limits=limits
    )


def test_too_much_in_total_is_refused(tmp_path: Path) -> None:
    data = zip_bytes({f"{i}.png": image_bytes((32, 32)) for i in range(4)})
    size = len(image_bytes((32, 32)))
    refused(tmp_path, data, "unpacks to more than", limits=UnpackLimits(max_total_bytes=3 * size))


def test_decoded_images_past_the_limit_are_refused(tmp_path: Path) -> None:
    data = zip_bytes({f"{i}.png": image_bytes((64, 64)) for i in range(4)})
    refused(tmp_path, data, "past the limit", limits=UnpackLimits(max_total_bytes=10_000))


def test_a_truncated_zip_is_refused(tmp_path: Path) -> None:
    data = class_zip()
    refused(tmp_path, data[: len(data) // 2], "damaged or truncated")


def test_a_zip_with_a_corrupted_member_is_refused(tmp_path: Path) -> None:
    data = bytearray(
        zip_bytes({"images.npy": npy_bytes(np.zeros((4, 8, 8), np.uint8))}, zipfile.ZIP_STORED)
    )
    data[200] ^= 0xFF  # inside the stored .npy data: the CRC no longer matches
    refused(tmp_path, bytes(data), "damaged")


def test_a_duplicate_entry_is_refused(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="Duplicate name"):
        data = zip_bytes({"a.png": image_bytes()})
        buffer = io.BytesIO(data)
        with zipfile.ZipFile(buffer, "a") as archive:
            archive.writestr("a.png", image_bytes())
    refused(tmp_path, buffer.getvalue(), "appears twice")


def test_an_npy_that_promises_more_than_it_holds_is_refused(tmp_path: Path) -> None:
    data = npy_bytes(np.zeros((2, 8, 8), np.uint8)).replace(b"(2, 8, 8)", b"(9, 8, 8)")
    refused(tmp_path, data, "truncated")


def test_an_npy_of_objects_is_refused(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    refused(tmp_path, buffer.getvalue(), "Python objects")
