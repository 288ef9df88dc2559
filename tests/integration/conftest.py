"""Fixtures of the integration suite's job tests (test_jobs.py, test_job_transactions.py): the
service on the embedded jobs backend, on RQ with a real Redis and worker, or on each in turn."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.jobs import env_for, start_worker, stop_group
from tests.support.processes import RedisServer, ServiceProcess, running_service
from tests.support.repositories import mnist_repo
from tests.support.synthetic import mnist_style_zip


@pytest.fixture(scope="module")
def upload() -> bytes:
    return mnist_style_zip(1000)


@pytest.fixture
def repo(models_dir: Path, tmp_path: Path) -> Path:
    return mnist_repo(models_dir, tmp_path)


@pytest.fixture
def embedded(tmp_path: Path, repo: Path) -> Iterator[ServiceProcess]:
    with running_service(env_for(tmp_path, repo), tmp_path) as service:
        yield service


@pytest.fixture
def with_rq(
    tmp_path: Path, repo: Path, redis_server: RedisServer
) -> Iterator[tuple[ServiceProcess, subprocess.Popen[bytes]]]:
    env = env_for(tmp_path, repo, {"VAE_REDIS_URL": redis_server.url})
    worker = start_worker(env, tmp_path)
    try:
        with running_service(env, tmp_path) as service:
            yield service, worker
    finally:
        stop_group(worker)


@pytest.fixture(params=["embedded", "rq"])
def on_each_backend(request: pytest.FixtureRequest) -> ServiceProcess:
    """The service on each jobs backend in turn: the embedded one, then RQ with a real Redis."""
    if request.param == "embedded":
        return request.getfixturevalue("embedded")
    service, _ = request.getfixturevalue("with_rq")
    return service
