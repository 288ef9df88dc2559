"""The dataset store: whole datasets or nothing, manifests, write-once names, deletion."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from app.datasets.arrays import DatasetError, load_arrays
from app.datasets.imagezip import ImageOptions
from app.datasets.store import (
    DatasetExists,
    DatasetManifest,
    DatasetNotFound,
    DatasetStore,
    UploadTooLarge,
)
from app.storage.files import InvalidName
from tests.support.dataset_builders import class_zip, digits, idx_zip, npz_bytes


def store_bytes(store: DatasetStore, name: str, data: bytes, **options: object) -> DatasetManifest:
    upload = store.begin(name, limit=1 << 20)
    try:
        for start in range(0, len(data), 1000):
            upload.write(data[start : start + 1000])
        return store.commit(name, upload, ImageOptions(**options))  # type: ignore[arg-type]
    finally:
        upload.discard()


def leftovers(store: DatasetStore) -> list[str]:
    return sorted(p.name for p in store.root.iterdir()) if store.root.exists() else []


def test_a_stored_dataset_has_data_and_a_manifest(tmp_path: Path) -> None:
    store = DatasetStore.in_data_dir(tmp_path)
    data = idx_zip()
    manifest = store_bytes(store, "digits", data)
    images, labels = digits()
    assert manifest.format == "idx-zip"
    assert manifest.count == 12
    assert manifest.shape == [1, 8, 8]
    assert manifest.sha256 == hashlib.sha256(data).hexdigest()
    assert manifest.bytes == len(data)
    assert manifest.value_range.min == images.min()
    assert manifest.value_range.max == images.max()
    assert [(c.label, c.count) for c in manifest.labels or []] == [(0, 4), (1, 4), (2, 4)]
    assert leftovers(store) == ["digits"]
    assert sorted(p.name for p in (store.root / "digits").iterdir()) == [
        "data.npz",
        "manifest.json",
    ]
    assert store.names() == ["digits"]
    assert store.manifest("digits") == manifest
    stored = load_arrays(store.path("digits"))
    np.testing.assert_array_equal(stored.images[:, 0], images)
    np.testing.assert_array_equal(stored.labels, labels)
    assert store.total_bytes() == manifest.stored_bytes + len(
        (store.root / "digits" / "manifest.json").read_bytes()
    )


def test_class_names_reach_the_manifest(tmp_path: Path) -> None:
    store = DatasetStore.in_data_dir(tmp_path)
    manifest = store_bytes(store, "pets", class_zip(classes=("dog", "cat")), resize=(4, 4))
    assert manifest.class_names == ["cat", "dog"]
    assert [c.name for c in manifest.labels or []] == ["cat", "dog"]
    assert manifest.options == {"resize": [4, 4], "channels": None}
    assert manifest.shape == [1, 4, 4]


def test_a_bad_upload_leaves_nothing(tmp_path: Path) -> None:
    store = DatasetStore.in_data_dir(tmp_path)
    with pytest.raises(DatasetError):
        store_bytes(store, "bad", class_zip()[:100])
    assert leftovers(store) == []
    assert not store.exists("bad")


def test_an_upload_past_the_cap_is_refused(tmp_path: Path) -> None:
    store = DatasetStore.in_data_dir(tmp_path)
    upload = store.begin("big", limit=10)
    with pytest.raises(UploadTooLarge):
        upload.write(b"x" * 11)
    upload.discard()
    assert leftovers(store) == []


def test_names_are_write_once(tmp_path: Path) -> None:
    store = DatasetStore.in_data_dir(tmp_path)
    images, _ = digits()
    first = store_bytes(store, "d", npz_bytes(images=images))
    with pytest.raises(DatasetExists):
        store_bytes(store, "d", npz_bytes(images=images[:3]))
    assert store.manifest("d") == first
    assert leftovers(store) == ["d"]


def test_delete_removes_the_dataset(tmp_path: Path) -> None:
    store = DatasetStore.in_data_dir(tmp_path)
    images, _ = digits()
    store_bytes(store, "d", npz_bytes(images=images))
    store.delete("d")
    assert leftovers(store) == []
    with pytest.raises(DatasetNotFound):
        store.path("d")
    with pytest.raises(DatasetNotFound):
        store.delete("d")


def test_names_are_never_paths(tmp_path: Path) -> None:
    """Storing under such a name is refused; looking one up finds nothing."""
    store = DatasetStore.in_data_dir(tmp_path)
    for name in ["../x", "a/b", "", ".staging-1", "UPPER"]:
        with pytest.raises(InvalidName):
            store.begin(name, 10)
        for lookup in (store.path, store.manifest, store.delete):
            with pytest.raises(DatasetNotFound):
                lookup(name)
    assert store.names() == []


def test_sweep_removes_what_a_crash_left_behind(tmp_path: Path) -> None:
    store = DatasetStore.in_data_dir(tmp_path)
    images, _ = digits()
    store_bytes(store, "kept", npz_bytes(images=images))
    abandoned = store.begin("crashed", limit=100)
    abandoned.write(b"partial")
    abandoned.close()
    fresh = store.begin("uploading", limit=100)
    old = 1_000_000_000
    for path in [abandoned.staging, abandoned.path]:
        os.utime(path, (old, old))
    assert store.sweep(older_than_s=3600) == 1
    assert leftovers(store) == sorted(["kept", fresh.staging.name])
    fresh.discard()


def test_a_staging_whose_owner_let_go_is_swept_at_once_and_a_held_one_never(
    tmp_path: Path,
) -> None:
    store = DatasetStore.in_data_dir(tmp_path)
    images, _ = digits()
    store_bytes(store, "kept", npz_bytes(images=images))
    assert leftovers(store) == ["kept"]  # the owner file does not travel into the dataset
    live = store.begin("uploading", limit=100)
    crashed = store.begin("crashed", limit=100)
    assert store.sweep() == 0  # both held, both young
    crashed.close()
    assert crashed._owner is not None
    os.close(crashed._owner)  # what the kernel does to the lock of a process that died
    crashed._owner = None
    assert store.sweep() == 1
    assert leftovers(store) == sorted(["kept", live.staging.name])
    live.discard()


@pytest.mark.parametrize(
    "content", [b"some notes\n", b"\x89PNG\r\n\x1a\n" + bytes(32)], ids=["text", "png"]
)
def test_a_file_that_is_neither_npz_nor_npy_says_what_to_send(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=r"not a dataset format .* an \.npz \(arrays 'images'"):
        load_arrays(path)
