"""Several hosts on loopback (issue 15): SeaweedFS as the object store, Redis as the queue, two
api processes with caches of their own and no shared disk (their TMPDIRs apart too), and two
`vae worker` processes. Under a steady load on both apis:

- the empty store is seeded with the shipped model by the apis as they start;
- a dataset uploaded through one api trains on a worker, and the new version is answered by both
  apis without a restart;
- two workers publishing the same model at once get distinct versions;
- the store killed: both apis answer from what they cached (readiness: degraded), so does a
  replica started during the outage on a host whose cache holds them, a dataset upload is a
  clean 503, and a job whose publish falls in the outage fails with the reason and leaves no
  version, not even half of one; the store back, the apis say ok again;
- nothing is lost: every request of the load is answered, all 200.

Prints an `OBJECT STORE ...` line with the counts and the publish-to-serving times (-s).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.repository.object_repository import ObjectModelRepository
from tests.support import jobs
from tests.support.load import Load
from tests.support.paths import SHIPPED_MODELS
from tests.support.processes import (
    RedisServer,
    ServiceProcess,
    redis_running,
    running_service,
    wait_until,
)
from tests.support.repositories import mnist_repo
from tests.support.seaweedfs import SeaweedFS, seaweedfs_running
from tests.support.synthetic import mnist_style_zip

pytestmark = pytest.mark.slow
TINY = {"epochs": 1, "eval_k": 5, "eval_images": 50, "hidden": [64], "latent_dim": 4,
        "quality": False}  # fmt: skip
LONGER = {**TINY, "epochs": 60}  # long enough to kill the store while it trains


@dataclass
class Stack:
    """Everything the scenario runs."""

    store: SeaweedFS
    redis: RedisServer
    apis: list[ServiceProcess]
    workers: list[subprocess.Popen[bytes]]
    hosts: dict[str, dict[str, str]]  # each process' environment, by host name
    root: Path

    def repository(self) -> ObjectModelRepository:
        """A client of the models in the store, as the test's own."""
        return ObjectModelRepository(self.store.store("models"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("hosts")
    with ExitStack() as stack:
        store = stack.enter_context(seaweedfs_running(root / "seaweedfs"))
        redis = stack.enter_context(redis_running())
        common = {
            **store.env(),
            "VAE_MODELS_DIR": store.url("models"),
            "VAE_DATA_DIR": store.url("data"),
            # the store is seeded with mnist alone (the scenario needs one model; mnist-hvae's
            # 11 MB would only lengthen the seeding)
            "VAE_SHIPPED_MODELS": str(mnist_repo(SHIPPED_MODELS, root / "shipped")),
            "VAE_REDIS_URL": redis.url,
            "VAE_ADMIN_TOKEN": jobs.TOKEN,
            "VAE_JOB_STALE_AFTER_S": "60",
            "OMP_NUM_THREADS": "1",
        }

        def host(name: str) -> dict[str, str]:
            """A host's own disk: its temporary directory and, for an api, its models cache."""
            tmp = root / name / "tmp"
            tmp.mkdir(parents=True)
            return {
                **common,
                "TMPDIR": str(tmp),
                "VAE_MODELS_CACHE_DIR": str(root / name / "cache"),
            }

        hosts = {name: host(name) for name in ("worker-1", "worker-2", "api-a", "api-b")}
        workers = []
        for name in ("worker-1", "worker-2"):
            worker = jobs.start_worker(hosts[name], root / name)
            stack.callback(jobs.stop_group, worker)
            workers.append(worker)
        apis = [
            stack.enter_context(running_service(hosts[name], root / name, ready_timeout=120))
            for name in ("api-a", "api-b")
        ]
        yield Stack(store, redis, apis, workers, hosts, root)


def ready(api: ServiceProcess) -> dict[str, Any]:
    reply = httpx.get(f"{api.url}/v2/health/ready", timeout=5)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def answered_version(api: ServiceProcess, ref: str) -> int | None:
    reply = httpx.post(f"{api.url}/sample", json={"model": ref, "n": 1, "seed": 0}, timeout=10)
    return int(reply.json()["version"]) if reply.status_code == 200 else None


def served_everywhere(stack: Stack, ref: str, version: int, timeout: float = 30) -> float:
    """Waits until every api answers `ref` with `version`; the seconds it took."""
    started = time.monotonic()
    for api in stack.apis:
        wait_until(
            lambda api=api: answered_version(api, ref) == version,  # type: ignore[misc]
            timeout,
            interval=0.05,
            what=f"{api.url} to answer {ref} with version {version}",
        )
    return time.monotonic() - started


class Timeline:
    """The scenario's phases, each with the seconds since the first."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.phases: list[str] = []

    def mark(self, phase: str) -> None:
        self.phases.append(f"{time.monotonic() - self.started:.1f}s {phase}")


@contextlib.contextmanager
def diagnosed(stack: Stack, loads: list[Load]) -> Iterator[Timeline]:
    """Yields the scenario's timeline; a failed assertion inside is raised again with the
    timeline, the loads' state and every api's diagnosis (also written to diagnosis.txt)."""
    timeline = Timeline()
    try:
        yield timeline
    except AssertionError as error:
        timeline.mark("failed")
        report = "\n".join(
            [*timeline.phases, *(load.state() for load in loads)]
            + [api.diagnosis() for api in stack.apis]
        )
        (stack.root / "diagnosis.txt").write_text(report)
        raise AssertionError(f"{error}\n{report}") from error


def test_two_hosts_share_models_and_datasets_through_the_store(
    stack: Stack, heldout_digits: tuple[np.ndarray, np.ndarray]
) -> None:
    api_a, api_b = stack.apis
    repository = stack.repository()
    assert repository.names() == ["mnist"]  # seeded from the shipped model, once
    assert repository.versions("mnist") == [1]
    for api in stack.apis:
        assert ready(api)["repository"]["status"] == "ok"

    loads = [Load(api.url, heldout_digits[0], threads=2) for api in stack.apis]
    timings: dict[str, float] = {}
    with loads[0], loads[1], diagnosed(stack, loads) as timeline:
        timeline.mark("upload and train")
        # A dataset uploaded through api A trains on a worker; both apis answer the version.
        with api_a.client() as http:
            jobs.put_dataset(http, "strokes", mnist_style_zip(300))
            job_id = jobs.submit(http, "strokes", "strokes", TINY)
            done = jobs.wait_status(http, job_id, {"succeeded", "failed"}, timeout=600)
        assert done["status"] == "succeeded", done
        assert done["result"]["version"] == 1
        timings["publish_to_every_replica_s"] = served_everywhere(stack, "strokes", 1)
        with api_b.client() as http:
            assert http.get("/datasets/strokes").json()["count"] == 300

        timeline.mark("twins")
        # Two workers publishing the same model at once get distinct versions.
        with api_b.client() as http:
            twins = [jobs.submit(http, "strokes", "twin", TINY) for _ in range(2)]
            results = [jobs.wait_status(http, j, {"succeeded", "failed"}, 600) for j in twins]
        assert [r["status"] for r in results] == ["succeeded", "succeeded"], results
        assert sorted(r["result"]["version"] for r in results) == [1, 2]
        assert repository.versions("twin") == [1, 2]
        for version in (1, 2):
            served_everywhere(stack, f"twin:{version}", version)

        timeline.mark("outage job")
        # The store killed while a job trains: the apis serve what they cached, say so, and
        # the job fails at its publish, leaving no version.
        with api_a.client() as http:
            outage_job = jobs.submit(http, "strokes", "outage", LONGER)
            wait_until(
                lambda: jobs.job(http, outage_job)["progress"].get("step", 0) > 0,
                300,
                what="the outage job to train",
            )
        timeline.mark("store stopped")
        stack.store.stop()
        before = [load.count() for load in loads]
        for api in stack.apis:
            wait_until(
                lambda api=api: ready(api)["repository"]["status"] == "degraded",  # type: ignore[misc]
                20,
                what="readiness to say degraded",
            )
            state = ready(api)
            assert state["ready"] is True and state["status"] == "degraded", state
            assert answered_version(api, "strokes") == 1  # cached versions keep answering
            assert answered_version(api, "twin:2") == 2
        timeline.mark("replica restarting")
        # A replica starting now, on a host whose cache holds the models, serves them.
        with running_service(stack.hosts["api-a"], stack.root / "api-a") as restarted:
            state = ready(restarted)
            assert state["repository"]["status"] == "degraded", state
            assert answered_version(restarted, "strokes") == 1
            assert answered_version(restarted, "twin:1") == 1
        timeline.mark("replica stopped; upload refused")
        with api_b.client() as http:
            refused = http.put("/datasets/late", content=mnist_style_zip(20), headers=jobs.AUTH)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"] == "storage_unavailable"
            failed = jobs.wait_status(http, outage_job, {"succeeded", "failed"}, timeout=600)
        assert failed["status"] == "failed", failed
        assert "object store" in (failed["error"] or ""), failed
        timeline.mark(f"outage job failed: {failed['error']}")
        for load, seen in zip(loads, before, strict=True):
            load.wait_for(30)  # answers went on during the outage
            assert load.count() > seen

        timeline.mark("store restarted")
        stack.store.start()
        for api in stack.apis:
            wait_until(
                lambda api=api: ready(api)["repository"]["status"] == "ok",  # type: ignore[misc]
                30,
                what="readiness to say ok again",
            )
        assert repository.versions("outage") == []
        assert [o.key for o in repository.store.objects("outage/") if "/claims/" not in o.key] == []

    summary = [load.summary() for load in loads]
    print(f"\nOBJECT STORE loads {summary} timings {timings} phases {timeline.phases}")
    for load in loads:
        assert load.failures == [], load.failures[:5]
        assert set(load.by_status()) == {200}, load.summary()
