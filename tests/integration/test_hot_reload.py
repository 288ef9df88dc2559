"""New versions are swapped in without a restart; a version that fails to load never replaces a
working one; admins pick the default and delete versions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServiceProcess, running_service, wait_until
from tests.support.repositories import copy_version, mnist_repo

TOKEN = "reload-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def repo(models_dir: Path, tmp_path: Path) -> Path:
    return mnist_repo(models_dir, tmp_path)


@pytest.fixture
def service(repo: Path, tmp_path: Path) -> Iterator[ServiceProcess]:
    env = {
        "VAE_MODELS_DIR": str(repo),
        "VAE_ADMIN_TOKEN": TOKEN,
        "VAE_DATA_DIR": str(tmp_path / "d"),
    }
    with running_service(env, tmp_path) as process:
        yield process


def version_of(http: httpx.Client) -> int:
    return int(http.post("/sample", json={"n": 1, "seed": 0}).json()["version"])


def test_a_new_version_is_swapped_in_and_a_broken_one_is_not(
    service: ServiceProcess, repo: Path
) -> None:
    with service.client() as http:
        first = version_of(http)
        copy_version(repo, first, first + 1)
        wait_until(lambda: version_of(http) == first + 1, 30, what="the new version to answer")

        copy_version(repo, first, first + 2, break_it=True)
        wait_until(
            lambda: any(
                v["load_error"]
                for v in http.get("/models/mnist").json()["versions"]
                if v["version"] == first + 2
            ),
            30,
            what="the broken version to be tried",
        )
        for _ in range(20):
            assert version_of(http) == first + 1  # the working version stays in service
        broken = http.post("/sample", json={"model": f"mnist:{first + 2}", "n": 1})
        assert broken.status_code == 503 and "failed to load" in broken.json()["message"]


def test_admins_choose_the_default_and_delete_versions(service: ServiceProcess, repo: Path) -> None:
    with service.client() as http:
        first = version_of(http)
        copy_version(repo, first, first + 1)
        wait_until(lambda: version_of(http) == first + 1, 30, what="the new version")

        assert http.post("/models/mnist/default", json={"version": first}).status_code == 401
        wrong = http.post(
            "/models/mnist/default", json={"version": first}, headers={"Authorization": "Bearer x"}
        )
        assert wrong.status_code == 403
        chosen = http.post("/models/mnist/default", json={"version": first}, headers=AUTH)
        assert chosen.status_code == 200, chosen.text
        assert version_of(http) == first
        assert (
            http.post("/models/mnist/default", json={"version": 999}, headers=AUTH).status_code
            == 404
        )

        assert (
            http.delete(f"/models/mnist/versions/{first}", headers=AUTH).status_code == 409
        )  # the default
        assert http.delete(f"/models/mnist/versions/{first + 1}", headers=AUTH).status_code == 204
        assert not (repo / "mnist" / str(first + 1)).exists()
        assert [v["version"] for v in http.get("/models/mnist").json()["versions"]] == [first]
        assert http.post("/sample", json={"model": f"mnist:{first + 1}", "n": 1}).status_code == 404
        assert version_of(http) == first
