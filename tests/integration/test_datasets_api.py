"""PUT/GET/DELETE /datasets over real HTTP against a `vae serve` process."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from app.datasets.arrays import load_arrays
from tests.support.dataset_builders import (
    class_zip,
    digits,
    idx_zip,
    image_bytes,
    npz_bytes,
    symlink_zip,
    zip_bytes,
)
from tests.support.processes import ServiceProcess, running_service

TOKEN = "dataset-test-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
CAP = 256 * 1024


@dataclass
class DatasetService:
    """A running service and the data directory it stores datasets in."""

    process: ServiceProcess
    datasets: Path

    def client(self) -> httpx.Client:
        return self.process.client()

    def entries(self) -> list[str]:
        """Everything in the datasets directory, hidden staging and trash included."""
        return sorted(p.name for p in self.datasets.iterdir()) if self.datasets.exists() else []


@pytest.fixture(scope="module")
def served(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatasetService]:
    root = tmp_path_factory.mktemp("datasets-api")
    env = {
        "VAE_MODELS_DIR": str(models_dir),
        "VAE_DATA_DIR": str(root / "data"),
        "VAE_ADMIN_TOKEN": TOKEN,
        "VAE_MAX_DATASET_BYTES": str(CAP),
    }
    with running_service(env, root) as process:
        yield DatasetService(process, root / "data" / "datasets")


@pytest.fixture
def http(served: DatasetService) -> Iterator[httpx.Client]:
    with served.client() as client:
        yield client


def put(
    http: httpx.Client,
    name: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    return http.put(
        f"/datasets/{name}",
        content=body,
        headers=ADMIN if headers is None else headers,
        params=params,
    )


def test_idx_zip_upload_then_get_list_and_delete(
    served: DatasetService, http: httpx.Client
) -> None:
    body = idx_zip(gzipped=True)
    response = put(http, "idx-digits", body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == "/datasets/idx-digits"
    manifest = response.json()
    images, labels = digits()
    assert manifest["format"] == "idx-zip"
    assert manifest["count"] == len(images)
    assert manifest["shape"] == [1, 8, 8]
    assert manifest["channels"] == 1
    assert manifest["value_range"] == {"min": float(images.min()), "max": float(images.max())}
    assert [(e["label"], e["count"]) for e in manifest["labels"]] == [(0, 4), (1, 4), (2, 4)]
    assert manifest["sha256"] == hashlib.sha256(body).hexdigest()
    assert manifest["bytes"] == len(body)

    assert http.get("/datasets/idx-digits").json() == manifest
    listed = http.get("/datasets").json()["datasets"]
    assert manifest in listed
    stored = load_arrays(served.datasets / "idx-digits" / "data.npz")
    np.testing.assert_array_equal(stored.images[:, 0], images)
    np.testing.assert_array_equal(stored.labels, labels)

    assert http.delete("/datasets/idx-digits", headers=ADMIN).status_code == 204
    assert http.get("/datasets/idx-digits").status_code == 404
    assert http.delete("/datasets/idx-digits", headers=ADMIN).status_code == 404
    assert "idx-digits" not in served.entries()


def test_npz_upload(http: httpx.Client) -> None:
    images, labels = digits(n=9)
    response = put(http, "npz-digits", npz_bytes(images=images, labels=labels))
    assert response.status_code == 201, response.text
    manifest = response.json()
    assert manifest["format"] == "npz"
    assert manifest["count"] == 9
    assert manifest["class_names"] is None


def test_zip_of_pngs_in_class_folders(http: httpx.Client) -> None:
    body = class_zip(per_class=2, classes=("dog", "cat", "bird"), prefix="pets/")
    # The Content-Type says nothing: the format is told by the content.
    response = put(
        http,
        "pets",
        body,
        headers={**ADMIN, "Content-Type": "text/plain"},
        params={"resize": "4x6"},
    )
    assert response.status_code == 201, response.text
    manifest = response.json()
    assert manifest["format"] == "image-zip"
    assert manifest["class_names"] == ["bird", "cat", "dog"]
    assert manifest["labels"] == [
        {"label": 0, "count": 2, "name": "bird"},
        {"label": 1, "count": 2, "name": "cat"},
        {"label": 2, "count": 2, "name": "dog"},
    ]
    assert manifest["shape"] == [1, 6, 4]
    assert manifest["options"] == {"resize": [4, 6], "channels": None}


def test_a_stored_name_is_not_overwritten(http: httpx.Client) -> None:
    images, _ = digits()
    assert put(http, "once", npz_bytes(images=images)).status_code == 201
    again = put(http, "once", npz_bytes(images=images[:2]))
    assert again.status_code == 409
    assert "delete it first" in again.json()["message"]
    assert http.get("/datasets/once").json()["count"] == len(images)


def test_admin_routes_need_the_token(served: DatasetService, http: httpx.Client) -> None:
    images, _ = digits()
    body = npz_bytes(images=images)
    missing = put(http, "guarded", body, headers={})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert put(http, "guarded", body, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert put(http, "guarded", body, headers={"Authorization": TOKEN}).status_code == 401
    assert "guarded" not in served.entries()

    assert put(http, "guarded", body).status_code == 201
    assert http.delete("/datasets/guarded").status_code == 401
    assert (
        http.delete("/datasets/guarded", headers={"Authorization": "Bearer wrong"}).status_code
        == 403
    )
    assert http.get("/datasets/guarded").status_code == 200


def _bomb() -> bytes:
    return zip_bytes({"images.npy": bytes(16 << 20)})


BAD_UPLOADS = {
    "zip-slip": (
        zip_bytes({"ok.png": image_bytes(), "../../evil.png": image_bytes()}),
        "climbs out",
    ),
    "zip-bomb": (_bomb(), "zip bomb"),
    "truncated-zip": (class_zip()[:200], "damaged or truncated"),
    "wrong-size-image": (
        zip_bytes({"a/1.png": image_bytes((8, 8)), "a/2.png": image_bytes((9, 8))}),
        r"a/2\.png is 9x8 but a/1\.png is 8x8",
    ),
    "mixed-channels": (
        zip_bytes({"1.png": image_bytes(mode="L"), "2.png": image_bytes(mode="RGB")}),
        r"2\.png has 3 channel",
    ),
    "empty-zip": (zip_bytes({}), "empty"),
    "empty-npz": (npz_bytes(images=np.zeros((0, 8, 8), np.uint8)), "no images"),
    "symlink": (symlink_zip(), "symbolic link"),
    "not-a-dataset": (b"hello, world", "not a dataset format"),
    "empty-body": (b"", "empty"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_get_422_and_leave_nothing(
    served: DatasetService, http: httpx.Client, case: str
) -> None:
    before = served.entries()
    body, message = BAD_UPLOADS[case]
    response = put(http, f"bad-{case}", body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_dataset"
    assert re.search(message, response.json()["message"]), response.json()["message"]
    assert served.entries() == before
    assert http.get(f"/datasets/bad-{case}").status_code == 404


def test_a_body_past_the_cap_gets_413_and_leaves_nothing(
    served: DatasetService, http: httpx.Client
) -> None:
    before = served.entries()
    response = put(http, "too-big", bytes(CAP + 1))
    assert response.status_code == 413
    assert response.json()["error"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap holds while streaming
        for _ in range(CAP // 8192 + 1):
            yield bytes(8192)

    streamed = http.put("/datasets/too-big", content=chunks(), headers=ADMIN)
    assert streamed.status_code == 413
    assert served.entries() == before


@pytest.mark.parametrize(
    ("name", "params", "status"),
    [
        ("Bad-Name", {}, 422),
        ("ok", {"resize": "0x8"}, 422),
        ("ok", {"resize": "big"}, 422),
        ("ok", {"channels": "7"}, 422),
    ],
)
def test_bad_names_and_options(
    http: httpx.Client, name: str, params: dict[str, str], status: int
) -> None:
    images, _ = digits()
    assert put(http, name, npz_bytes(images=images), params=params).status_code == status


def test_options_for_arrays_are_refused(http: httpx.Client) -> None:
    images, _ = digits()
    response = put(http, "arrays", npz_bytes(images=images), params={"channels": "3"})
    assert response.status_code == 422
    assert "zips of images" in response.json()["message"]


def test_unknown_datasets_are_404(http: httpx.Client) -> None:
    assert http.get("/datasets/no-such-thing").status_code == 404
    assert http.get("/datasets/UPPER").status_code == 404
    assert http.delete("/datasets/no-such-thing", headers=ADMIN).status_code == 404


def test_dataset_bytes_metric(served: DatasetService, http: httpx.Client) -> None:
    images, _ = digits()
    assert put(http, "metered", npz_bytes(images=images)).status_code == 201
    on_disk = sum(
        (served.datasets / name / file).stat().st_size
        for name in served.entries()
        if not name.startswith(".")
        for file in ("data.npz", "manifest.json")
    )
    text = http.get("/metrics").text
    found = re.search(r"^vae_dataset_bytes (\S+)$", text, re.MULTILINE)
    assert found is not None
    assert float(found.group(1)) == on_disk > 0
