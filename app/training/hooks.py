"""What a training tells its caller and asks it while it runs: progress snapshots, the stage it
enters, whether to stop, whether it may commit, the version it committed. `vae train` and the
job task each give one `TrainingHooks`; the pipeline, the trainer and a kind's extra training
take it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainProgress:
    """A snapshot of a running training, reported every few steps."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    reconstruction: float
    kl: float
    kl_weight: float
    samples_per_second: float
    eta_seconds: float
    epoch_step: int = 0  # steps done in this epoch, of epoch_steps
    epoch_steps: int = 0


ProgressCallback = Callable[[TrainProgress], None]


class TrainingCancelled(RuntimeError):
    """Raised when `should_stop` asks the run to end (or a cancel claimed the commit gate)."""


def report_due(epoch_step: int, epoch_steps: int, every: int) -> bool:
    """Whether progress is reported after `epoch_step` (1-based) of an epoch's `epoch_steps`:
    after its first step, then at least ten times an epoch (every `every` steps at most), and at
    its end, so a long epoch shows progress from its start."""
    interval = max(1, min(every, epoch_steps // 10))
    return epoch_step == 1 or epoch_step % interval == 0 or epoch_step == epoch_steps


def progress_of(
    epoch: tuple[int, int],
    step: tuple[int, int],
    epoch_step: tuple[int, int],
    means: tuple[float, float, float],
    kl_weight: float,
    batch_size: int,
    elapsed: float,
) -> TrainProgress:
    """The progress at (1-based) `epoch`, `step` and `epoch_step`, each as (done, of), with the
    epoch's mean loss, reconstruction and kl so far (`means`), after `elapsed` seconds: throughput
    from the samples seen, the ETA from the mean time a step took."""
    (done, steps), (seen, epoch_steps) = step, epoch_step
    loss, reconstruction, kl = means
    return TrainProgress(
        epoch=epoch[0],
        epochs=epoch[1],
        step=done,
        steps=steps,
        loss=loss,
        reconstruction=reconstruction,
        kl=kl,
        kl_weight=kl_weight,
        samples_per_second=done * batch_size / max(elapsed, 1e-9),
        eta_seconds=elapsed / done * (steps - done),
        epoch_step=seen,
        epoch_steps=epoch_steps,
    )


@dataclass(frozen=True)
class TrainingHooks:
    """The caller's side of a run, every callback optional.

    `should_stop` is asked at every training step and every stage; `claim_commit(version)`
    (False: cancelled) just before the commit point, told the version about to be committed (so
    a caller that outlives the run can tell later whether it was); `on_commit(version)` is told
    the moment the version exists; `on_stage` hears each stage's name as it starts."""

    on_progress: ProgressCallback | None = None
    on_stage: Callable[[str], None] | None = None
    should_stop: Callable[[], bool] | None = None
    claim_commit: Callable[[int], bool] | None = None
    on_commit: Callable[[int], None] | None = None

    def stopped(self) -> bool:
        """Whether the caller asks the run to stop."""
        return self.should_stop is not None and self.should_stop()

    def check(self, before: str) -> None:
        """Raises TrainingCancelled when the caller asks the run to stop before `before`."""
        if self.stopped():
            raise TrainingCancelled(f"cancelled before {before}")

    def stage(self, name: str) -> None:
        """Enters the stage `name`: a stop asked for ends the run here, else the caller hears it."""
        self.check(name)
        if self.on_stage is not None:
            self.on_stage(name)

    def progress(self, progress: TrainProgress) -> None:
        """Passes a progress snapshot on."""
        if self.on_progress is not None:
            self.on_progress(progress)

    def claim(self, version: int) -> None:
        """The commit gate, run right before committing `version`: TrainingCancelled when a stop
        was asked or a cancel claimed the gate first."""
        self.check("publishing")
        if self.claim_commit is not None and not self.claim_commit(version):
            raise TrainingCancelled("cancelled before publishing")

    def committed(self, name: str, version: int) -> None:
        """Tells the caller the version exists; a failure to tell is logged, never raised (the
        run has published whatever follows)."""
        if self.on_commit is None:
            return
        try:
            self.on_commit(version)
        except Exception:
            logger.exception("published %s version %d; could not report it at once", name, version)
