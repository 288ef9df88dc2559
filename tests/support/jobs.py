"""Shared helpers of the job tests: the admin token, workers started and stopped as process
groups, datasets uploaded, jobs submitted and followed."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.paths import ROOT
from tests.support.processes import wait_until

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ENDLESS = {"epochs": 1000, "eval_k": 20, "hidden": [256], "latent_dim": 8}


def start_worker(env: dict[str, str], log_dir: Path) -> subprocess.Popen[bytes]:
    with open(log_dir / f"worker-{time.monotonic_ns()}.log", "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def children_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split()]


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Kills a worker and its work-horse (RQ puts the horse in a session of its own)."""
    if process.poll() is None:
        horses = children_of(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        for pid in horses:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(10)


def put_dataset(http: httpx.Client, name: str, body: bytes) -> None:
    reply = http.put(f"/datasets/{name}", content=body, headers=AUTH)
    assert reply.status_code in (200, 201), reply.text


def submit(http: httpx.Client, dataset: str, name: str, config: dict[str, Any]) -> str:
    reply = http.post(
        "/jobs", json={"dataset": dataset, "name": name, "config": config}, headers=AUTH
    )
    assert reply.status_code == 202, reply.text
    assert reply.json()["status"] in {"queued", "running"}
    return str(reply.json()["id"])


def job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    reply = http.get(f"/jobs/{job_id}")
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def wait_status(
    http: httpx.Client, job_id: str, statuses: set[str], timeout: float = 240
) -> dict[str, Any]:
    found: dict[str, Any] = {}

    def reached() -> bool:
        found.update(job(http, job_id))
        return found["status"] in statuses

    wait_until(reached, timeout, interval=0.2, what=f"job {job_id} to be {statuses}")
    return found


QUICK = {"epochs": 20, "eval_k": 20, "hidden": [256], "latent_dim": 8}


def env_for(tmp: Path, models_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        "VAE_MODELS_DIR": str(models_dir),
        "VAE_DATA_DIR": str(tmp / "data"),
        "VAE_ADMIN_TOKEN": TOKEN,
        "VAE_JOB_STALE_AFTER_S": "4",
        **(extra or {}),
    }


def start_endless_job(http: httpx.Client, upload: bytes, name: str) -> str:
    """Uploads the dataset and submits a job that trains until stopped; returns its id once the
    training has begun."""
    put_dataset(http, "strokes", upload)
    job_id = submit(http, "strokes", name, ENDLESS)
    wait_until(
        lambda: job(http, job_id)["progress"].get("step", 0) > 0, 120, what="training to start"
    )
    return job_id


def published_versions(repo: Path, name: str) -> list[str]:
    """The version numbers published under `name` (none when the name does not exist)."""
    folder = repo / name
    return [p.name for p in folder.iterdir() if p.name.isdigit()] if folder.exists() else []
