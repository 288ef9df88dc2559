"""A job whose process dies in the instant after its commit (the rename of its staging directory
into place), before it could report the version, has succeeded with that version: the commit
claim names the version, and the backend asks the repository before it says anything. The task
is held right after the rename by its test-only hook (VAE_TEST_HOLD_AFTER_COMMIT, in
app/jobs/tasks.py), and killed there with SIGKILL: on the embedded backend its training child,
on RQ the work-horse alone or the worker and its work-horse."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.jobs.tasks import HOLD_AFTER_COMMIT
from tests.support.jobs import (
    QUICK,
    env_for,
    published_versions,
    put_dataset,
    start_worker,
    stop_group,
    submit,
    wait_status,
)
from tests.support.processes import RedisServer, ServiceProcess, running_service, wait_until


@pytest.fixture(params=["local child", "rq work-horse", "rq worker and work-horse"])
def held(
    request: pytest.FixtureRequest, tmp_path: Path, repo: Path
) -> Iterator[tuple[str, ServiceProcess, subprocess.Popen[bytes] | None, Path]]:
    """The service (and an RQ worker) whose jobs hold right after their commit until the
    returned path exists."""
    release = tmp_path / "release"
    extra = {HOLD_AFTER_COMMIT: str(release)}
    if request.param == "local child":
        with running_service(env_for(tmp_path, repo, extra), tmp_path) as service:
            yield request.param, service, None, release
        return
    redis: RedisServer = request.getfixturevalue("redis_server")
    env = env_for(tmp_path, repo, {**extra, "VAE_REDIS_URL": redis.url})
    worker = start_worker(env, tmp_path)
    try:
        with running_service(env, tmp_path) as service:
            yield request.param, service, worker, release
    finally:
        stop_group(worker)


def kill_when_held(case: str, release: Path, worker: subprocess.Popen[bytes] | None) -> None:
    """Waits for the task to hold past its commit, then kills what `case` names with SIGKILL."""
    held = Path(f"{release}.held")
    wait_until(held.exists, 240, what="the job to commit")
    pid, parent = (int(n) for n in held.read_text().split())
    if worker is not None and case == "rq worker and work-horse":
        assert parent == worker.pid
        stop_group(worker)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_a_task_killed_right_after_its_commit_leaves_the_job_succeeded_with_its_version(
    held: tuple[str, ServiceProcess, subprocess.Popen[bytes] | None, Path],
    upload: bytes,
    repo: Path,
) -> None:
    case, service, worker, release = held
    with service.client() as http:
        put_dataset(http, "strokes", upload)
        job_id = submit(http, "strokes", "crash", {**QUICK, "epochs": 2})
        kill_when_held(case, release, worker)
        final = wait_status(http, job_id, {"succeeded", "failed", "cancelled"}, timeout=120)
        assert final["status"] == "succeeded", final
        assert final["result"]["version"] == 1, final
        assert final["error"] is None
        assert "DEFAULT may not have been moved" in final["result"]["default_error"]
        assert http.get(f"/jobs/{job_id}").json()["status"] == "succeeded"  # and stays so
        reply = http.post("/sample", json={"model": "crash:1", "n": 1})
        assert reply.status_code == 200, reply.text  # the version is live
    assert published_versions(repo, "crash") == ["1"]
    assert not release.exists()  # killed while held: it never reported the version
