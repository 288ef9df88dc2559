"""Upload a dataset, train through POST /jobs, and get answers from the new version with no
restart: on the embedded backend (local processes) and on RQ with a real Redis and worker."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support.dataset_builders import mnist_download_zip
from tests.support.jobs import (
    AUTH,
    ENDLESS,
    QUICK,
    children_of,
    job,
    published_versions,
    put_dataset,
    start_endless_job,
    stop_group,
    submit,
    wait_status,
)
from tests.support.processes import (
    ServiceProcess,
    wait_until,
)


def test_train_through_jobs_and_serve_the_new_version(
    on_each_backend: ServiceProcess, upload: bytes
) -> None:
    with on_each_backend.client() as http:
        put_dataset(http, "strokes", upload)
        job_id = submit(http, "strokes", "strokes", QUICK)
        steps: list[int] = []
        while (state := job(http, job_id))["status"] in {"queued", "running"}:
            step = state["progress"].get("step")
            if step is not None and (not steps or step != steps[-1]):
                steps.append(step)
            time.sleep(0.05)
        assert state["status"] == "succeeded", state
        assert len(steps) >= 2 and steps == sorted(steps), steps  # progress moved while it ran
        assert state["result"]["model"] == "strokes" and state["result"]["version"] == 1
        assert (
            state["progress"]["stage"] == "publishing"
            or state["progress"]["step"] == state["progress"]["steps"]
        )

        reply = http.post("/sample", json={"model": "strokes", "n": 2, "seed": 0})
        assert reply.status_code == 200, reply.text
        assert reply.json()["version"] == 1

        # A second version of the same name takes over the name without a restart.
        second = submit(http, "strokes", "strokes", {**QUICK, "epochs": 2})
        assert wait_status(http, second, {"succeeded", "failed"})["status"] == "succeeded"
        wait_until(
            lambda: (
                http.post("/sample", json={"model": "strokes", "n": 1}).json().get("version") == 2
            ),
            30,
            what="version 2 to answer",
        )
        assert http.post("/sample", json={"model": "strokes:1", "n": 1}).json()["version"] == 1


def test_a_zip_of_mnists_four_gz_files_uploads_and_trains(
    embedded: ServiceProcess, heldout_digits: tuple[Any, Any]
) -> None:
    """MNIST's downloads zipped as they come (four gzipped IDX files) are a dataset a job trains on."""
    images, labels = heldout_digits
    with embedded.client() as http:
        put_dataset(http, "mnist-gz", mnist_download_zip(images, labels, test=56))
        stored = http.get("/datasets/mnist-gz").json()
        assert stored["count"] == len(images) and stored["format"] == "idx-zip", stored
        job_id = submit(http, "mnist-gz", "mnist-gz", {**QUICK, "epochs": 1, "holdout": 56})
        state = wait_status(http, job_id, {"succeeded", "failed"})
        assert state["status"] == "succeeded", state
        reply = http.post("/sample", json={"model": "mnist-gz", "n": 2, "seed": 0})
        assert reply.status_code == 200, reply.text


def test_stopping_the_server_mid_job_leaks_no_semaphores(
    embedded: ServiceProcess, upload: bytes
) -> None:
    """The local backend's queue and cancel events are released when the server stops, not
    left to the resource tracker ("There appear to be 3 leaked semaphore objects")."""
    with embedded.client() as http:
        start_endless_job(http, upload, "endless")
    embedded.stop()
    assert embedded.process.returncode is not None
    wait_until(lambda: "Finished server process" in embedded.log.read_text(), 10, what="exit")
    time.sleep(1)  # the resource tracker reports after the server's own last line
    log = embedded.log.read_text()
    assert "leaked semaphore" not in log, log[-2000:]
    assert "Traceback" not in log, log[-2000:]


def test_cancel_a_queued_and_a_running_job(
    on_each_backend: ServiceProcess, upload: bytes, repo: Path
) -> None:
    with on_each_backend.client() as http:
        running = start_endless_job(http, upload, "endless")
        queued = submit(http, "strokes", "endless", ENDLESS)
        assert job(http, queued)["status"] == "queued"  # one job trains at a time

        cancelled = http.post(f"/jobs/{queued}/cancel", headers=AUTH).json()
        assert cancelled["status"] == "cancelled"

        asked = time.monotonic()
        assert http.post(f"/jobs/{running}/cancel", headers=AUTH).status_code == 200
        final = wait_status(http, running, {"cancelled", "failed", "succeeded"}, timeout=30)
        assert final["status"] == "cancelled", final
        assert time.monotonic() - asked < 20
        assert not published_versions(repo, "endless")


def test_a_worker_killed_mid_job_leaves_the_job_failed(
    with_rq: tuple[ServiceProcess, subprocess.Popen[bytes]], upload: bytes, repo: Path
) -> None:
    service, worker = with_rq
    with service.client() as http:
        job_id = start_endless_job(http, upload, "doomed")
        stop_group(worker)  # the worker and its work-horse, without warning
        final = wait_status(http, job_id, {"failed", "succeeded", "cancelled"}, timeout=60)
        assert final["status"] == "failed"
        assert "heartbeat" in final["error"]
    assert not published_versions(repo, "doomed")


def test_a_killed_local_training_process_fails_the_job(
    embedded: ServiceProcess, upload: bytes
) -> None:
    with embedded.client() as http:
        job_id = start_endless_job(http, upload, "doomed")
        for pid in children_of(embedded.process.pid):
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"multiprocessing" in cmdline and b"resource_tracker" not in cmdline:
                os.kill(int(pid), signal.SIGKILL)
        final = wait_status(http, job_id, {"failed", "succeeded", "cancelled"}, timeout=30)
        assert final["status"] == "failed" and "died" in final["error"]


def test_job_requests_are_validated_up_front(embedded: ServiceProcess, upload: bytes) -> None:
    with embedded.client() as http:
        put_dataset(http, "strokes", upload)
        bad = http.post(
            "/jobs",
            json={"dataset": "strokes", "name": "m", "config": {"epochs": -1}},
            headers=AUTH,
        )
        assert bad.status_code == 422 and "epochs" in bad.text
        unknown = http.post(
            "/jobs", json={"dataset": "strokes", "name": "m", "config": {"epoch": 2}}, headers=AUTH
        )
        assert unknown.status_code == 422 and "epoch" in unknown.text
        missing = http.post("/jobs", json={"dataset": "nothing", "name": "m"}, headers=AUTH)
        assert missing.status_code == 404
        assert http.post("/jobs", json={"dataset": "strokes", "name": "m"}).status_code == 401
        assert (
            http.post(
                "/jobs",
                json={"dataset": "strokes", "name": "m"},
                headers={"Authorization": "Bearer no"},
            ).status_code
            == 403
        )
        assert http.get("/jobs/doesnotexist").status_code == 404
        assert http.post("/jobs/doesnotexist/cancel", headers=AUTH).status_code == 404
