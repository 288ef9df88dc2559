"""Jobs as transactions over real processes, on the embedded and the RQ backend: a cancel late
in a job publishes nothing and leaves nothing; a cancel after publishing says it was too late and
which version; a dataset in use cannot be deleted; a DEFAULT that cannot be written leaves the
job succeeded and saying so."""

from __future__ import annotations

from pathlib import Path

from tests.support.jobs import (
    AUTH,
    ENDLESS,
    QUICK,
    job,
    published_versions,
    put_dataset,
    start_endless_job,
    submit,
    wait_status,
)
from tests.support.processes import ServiceProcess, wait_until

# Scoring samples trains a classifier: seconds of work after training, before the commit point.
SLOW_END = {**QUICK, "epochs": 2, "quality": True}
LATE_STAGES = {"exporting", "evaluating", "scoring samples", "publishing"}


def leftovers(repo: Path) -> list[str]:
    """Hidden files and directories (staging, temp files) anywhere in the repository."""
    return sorted(p.relative_to(repo).as_posix() for p in repo.rglob(".*"))


def test_a_cancel_after_training_publishes_nothing_and_leaves_nothing(
    on_each_backend: ServiceProcess, upload: bytes, repo: Path
) -> None:
    with on_each_backend.client() as http:
        put_dataset(http, "strokes", upload)
        job_id = submit(http, "strokes", "late", SLOW_END)
        wait_until(
            lambda: job(http, job_id)["progress"].get("stage") in LATE_STAGES,
            240,
            interval=0.1,
            what="training to end",
        )
        answer = http.post(f"/jobs/{job_id}/cancel", headers=AUTH).json()
        assert answer["cancel"]["outcome"] == "cancelled", answer
        final = wait_status(http, job_id, {"cancelled", "failed", "succeeded"}, timeout=60)
        assert final["status"] == "cancelled", final
        assert final["cancel"]["outcome"] == "cancelled"
        wait_until(lambda: not leftovers(repo), 20, what="the job's staging to be removed")
    assert not published_versions(repo, "late")
    assert not (repo / "late").exists()


def test_a_cancel_after_publishing_is_too_late_and_names_the_version(
    on_each_backend: ServiceProcess, upload: bytes, repo: Path
) -> None:
    with on_each_backend.client() as http:
        put_dataset(http, "strokes", upload)
        job_id = submit(http, "strokes", "done", {**QUICK, "epochs": 2})
        assert wait_status(http, job_id, {"succeeded", "failed"})["status"] == "succeeded"
        answer = http.post(f"/jobs/{job_id}/cancel", headers=AUTH)
        assert answer.status_code == 200
        body = answer.json()
        assert body["status"] == "succeeded"
        assert body["cancel"] == {
            "outcome": "too_late",
            "message": "too late: published as version 1",
            "version": 1,
        }
    assert (repo / "done" / "DEFAULT").read_text().strip() == "1"
    assert not leftovers(repo)


def test_a_dataset_in_use_cannot_be_deleted_until_its_jobs_end(
    embedded: ServiceProcess, upload: bytes
) -> None:
    with embedded.client() as http:
        running = start_endless_job(http, upload, "endless")
        queued = submit(http, "strokes", "endless", ENDLESS)
        refused = http.delete("/datasets/strokes", headers=AUTH)
        assert refused.status_code == 409, refused.text
        assert running in refused.json()["message"] and queued in refused.json()["message"]
        assert http.get("/datasets/strokes").status_code == 200  # still there
        for job_id in (queued, running):
            http.post(f"/jobs/{job_id}/cancel", headers=AUTH)
        wait_status(http, running, {"cancelled", "failed", "succeeded"}, timeout=60)
        assert http.delete("/datasets/strokes", headers=AUTH).status_code == 204


def test_a_default_that_cannot_be_written_leaves_the_job_succeeded_and_saying_so(
    embedded: ServiceProcess, upload: bytes, repo: Path
) -> None:
    blocker = repo / "blocked" / "DEFAULT"
    blocker.mkdir(parents=True)  # os.replace onto a non-empty directory fails: a broken disk
    (blocker / "in-the-way").write_text("x")
    with embedded.client() as http:
        put_dataset(http, "strokes", upload)
        job_id = submit(http, "strokes", "blocked", {**QUICK, "epochs": 2})
        final = wait_status(http, job_id, {"succeeded", "failed", "cancelled"})
        assert final["status"] == "succeeded", final
        assert final["result"]["version"] == 1
        assert "DEFAULT was not moved" in final["result"]["default_error"]
        reply = http.post("/sample", json={"model": "blocked:1", "n": 1})
        assert reply.status_code == 200, reply.text  # the version is live
    assert published_versions(repo, "blocked") == ["1"]
    assert (repo / "blocked" / "LAST_VERSION").read_text().strip() == "1"
    assert not leftovers(repo)
