"""The training task a job runs, wherever it runs (an RQ work-horse or a local process).

Imported by name in the worker only: the API never imports this module's torch-using parts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from app.jobs.transaction import CommitGate

Report = Callable[[dict[str, Any]], None]
HEARTBEAT_SECONDS = 2.0


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


def execute_training(
    spec: dict[str, Any],
    report: Report,
    gate: CommitGate,
    owner: str,
    on_commit: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Trains `spec["name"]` on the stored dataset `spec["dataset"]` and publishes a version,
    as the job `owner` (its id names the staging directory).

    `report` receives progress dictionaries (stage, epoch, step, loss terms, samples/s, ETA);
    `gate` is polled every step and stage, and claimed for the commit just before publishing
    (TrainingCancelled when a cancel claimed it first). Returns {"model", "version", "metrics",
    "default_error"}: past the commit point the job has succeeded, DEFAULT moved or not.
    """
    from app.config import get_settings
    from app.datasets.opening import open_datasets
    from app.repository.opening import open_repository
    from app.storage.locations import to_location
    from app.training.config import TrainConfig
    from app.training.pipeline import run_training
    from app.training.trainer import TrainProgress

    config = TrainConfig.model_validate(spec["config"])
    endpoint = get_settings().s3_endpoint_url  # the worker's own, as its credentials are
    datasets = open_datasets(to_location(spec["data_dir"]), endpoint)
    data_path = datasets.path(spec["dataset"])
    last_report = [0.0]

    def on_progress(progress: TrainProgress) -> None:
        now = time.monotonic()
        if now - last_report[0] >= 0.5 or progress.step == progress.steps:
            last_report[0] = now
            report({"stage": "training", **asdict(progress)})

    published = run_training(
        config,
        data_path,
        spec["name"],
        open_repository(to_location(spec["models_dir"]), endpoint),
        dataset_name=spec["dataset"],
        on_progress=on_progress,
        on_stage=lambda stage: report({"stage": stage}),
        should_stop=gate.cancelled,
        make_default=bool(spec.get("make_default", True)),
        owner=owner,
        claim_commit=gate.claim_commit,
        on_commit=on_commit,
    )
    settings = get_settings()
    if settings.redis_url:  # replicas pull at once instead of at their next poll
        from app.serving.notifications import announce

        announce(settings.redis_url, published.name, published.version)
    metrics = published.manifest.metrics
    return {
        "model": published.name,
        "version": published.version,
        "metrics": None if metrics is None else metrics.model_dump(exclude={"kl_per_dim"}),
        "default_error": published.default_error,
    }
