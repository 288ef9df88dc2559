"""A delete of a dataset and a submit of a job on it, sent at the same instant, are ordered: one
of the two is accepted, never both (a job accepted on a dataset deleted under it would fail). On
the embedded backend (its one training slot held by a long job, so the racing jobs only queue)
and on RQ with a real Redis and no worker (the jobs stay queued)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.dataset_builders import digits, npz_bytes
from tests.support.jobs import AUTH, ENDLESS, env_for, put_dataset, submit
from tests.support.processes import ServiceProcess, running_service

PAIRS = 30


@pytest.fixture(params=["embedded", "rq"])
def service(
    request: pytest.FixtureRequest, tmp_path: Path, repo: Path, upload: bytes
) -> Iterator[ServiceProcess]:
    extra = {}
    if request.param == "rq":
        extra["VAE_REDIS_URL"] = request.getfixturevalue("redis_server").url
    with running_service(env_for(tmp_path, repo, extra), tmp_path) as running:
        holder = None
        if request.param == "embedded":
            with running.client() as http:
                put_dataset(http, "strokes", upload)
                holder = submit(http, "strokes", "holder", ENDLESS)  # takes the one slot
        yield running
        if holder is not None:
            with running.client() as http:
                http.post(f"/jobs/{holder}/cancel", headers=AUTH)


def race(service: ServiceProcess, dataset: str) -> tuple[int, int]:
    """DELETE /datasets/{dataset} and POST /jobs on it at once: their two statuses."""
    start = threading.Barrier(2)
    statuses: dict[str, int] = {}

    def delete() -> None:
        with service.client() as http:
            start.wait(10)
            statuses["delete"] = http.delete(f"/datasets/{dataset}", headers=AUTH).status_code

    def post() -> None:
        with service.client() as http:
            start.wait(10)
            body = {"dataset": dataset, "name": "raced", "config": ENDLESS}
            statuses["submit"] = http.post("/jobs", json=body, headers=AUTH).status_code

    threads = [threading.Thread(target=delete), threading.Thread(target=post)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return statuses["delete"], statuses["submit"]


def test_racing_deletes_and_submits_are_never_both_accepted(service: ServiceProcess) -> None:
    body = npz_bytes(images=digits()[0])
    outcomes = []
    with service.client() as http:
        for pair in range(PAIRS):
            put_dataset(http, f"raced-{pair}", body)
            outcomes.append(race(service, f"raced-{pair}"))
            assert outcomes[-1] in {(204, 404), (409, 202)}, outcomes
        queued = [j for j in http.get("/jobs").json() if j["name"] == "raced"]
        for job in queued:
            assert http.post(f"/jobs/{job['id']}/cancel", headers=AUTH).status_code == 200
    accepted_jobs = sum(1 for _, submit_status in outcomes if submit_status == 202)
    assert accepted_jobs == len(queued)
