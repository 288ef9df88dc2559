"""The training task a job runs, wherever it runs (an RQ work-horse or a local process).

Imported by name in the worker only: the API never imports this module's torch-using parts.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.jobs.spec import JobSpec
from app.jobs.transaction import CommitGate

if TYPE_CHECKING:
    from app.training.hooks import TrainProgress

Report = Callable[[dict[str, Any]], None]
HEARTBEAT_SECONDS = 2.0
PROGRESS_SECONDS = 0.5  # the least time between two progress reports
HOLD_AFTER_COMMIT = "VAE_TEST_HOLD_AFTER_COMMIT"


class Heartbeat:
    """Calls `beat()` every few seconds from a daemon thread while the task runs, so a watcher
    can tell a slow stage (evaluation, export) from a dead worker."""

    def __init__(self, beat: Callable[[], None], every: float = HEARTBEAT_SECONDS) -> None:
        self._beat = beat
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="job-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            try:
                self._beat()
            except Exception:  # a missed beat is not worth failing the training for
                continue


def throttled(report: Report) -> Callable[[TrainProgress], None]:
    """Training progress passed to `report` at most every PROGRESS_SECONDS, and at the end."""
    last_report = [0.0]

    def on_progress(progress: TrainProgress) -> None:
        now = time.monotonic()
        if now - last_report[0] >= PROGRESS_SECONDS or progress.step == progress.steps:
            last_report[0] = now
            report({"stage": "training", **asdict(progress)})

    return on_progress


def held_after_commit(on_commit: Callable[[int], None] | None) -> Callable[[int], None] | None:
    """`on_commit`, unless the environment sets VAE_TEST_HOLD_AFTER_COMMIT=<path> (for tests
    only; no deployment sets it): then the task, right after its commit (the version exists,
    unreported), writes "<pid> <parent pid>" to <path>.held and waits until <path> exists before
    it reports the version, so a test can kill it in that instant without relying on timing."""
    path = os.environ.get(HOLD_AFTER_COMMIT)
    if not path:
        return on_commit

    def hold(version: int) -> None:
        held, release = Path(f"{path}.held"), Path(path)
        held.with_suffix(".tmp").write_text(f"{os.getpid()} {os.getppid()}\n")
        held.with_suffix(".tmp").replace(held)
        while not release.exists():
            time.sleep(0.05)
        if on_commit is not None:
            on_commit(version)

    return hold


def execute_training(
    spec: JobSpec,
    report: Report,
    gate: CommitGate,
    on_commit: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Trains `spec.name` on the stored dataset `spec.dataset` and publishes a version, as the
    job `spec.job_id` (its id names the staging directory), with the storage `spec` names.

    `report` receives progress dictionaries (stage, epoch, step, loss terms, samples/s, ETA);
    `gate` is polled every step and stage, and claimed for the commit just before publishing
    (TrainingCancelled when a cancel claimed it first). Returns {"model", "version", "metrics",
    "default_error"}: past the commit point the job has succeeded, DEFAULT moved or not.
    """
    from app.datasets.opening import open_datasets
    from app.repository.opening import open_repository
    from app.training.hooks import TrainingHooks
    from app.training.pipeline import run_training

    hooks = TrainingHooks(
        on_progress=throttled(report),
        on_stage=lambda stage: report({"stage": stage}),
        should_stop=gate.cancelled,
        claim_commit=gate.claim_commit,
        on_commit=held_after_commit(on_commit),
    )
    published = run_training(
        spec.config,
        open_datasets(spec.data_dir, spec.s3_endpoint_url).path(spec.dataset),
        spec.name,
        open_repository(spec.models_dir, spec.s3_endpoint_url),
        hooks,
        dataset_name=spec.dataset,
        make_default=spec.make_default,
        owner=spec.job_id,
    )
    if spec.redis_url:  # replicas pull at once instead of at their next poll
        from app.serving.notifications import announce

        announce(spec.redis_url, published.name, published.version)
    metrics = published.manifest.metrics
    return {
        "model": published.name,
        "version": published.version,
        "metrics": None if metrics is None else metrics.model_dump(exclude={"kl_per_dim"}),
        "default_error": published.default_error,
    }
