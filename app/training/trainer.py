"""The training loop: Adam, dynamic binarization, KL warm-up, free bits, progress and cancel."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from app.datasets.arrays import ImageDataset
from app.training.config import TrainConfig
from app.training.kinds import build_model
from app.training.losses import kl_weight
from app.training.modules import BaseVAE, GaussianVAE
from app.training.objectives import batch_objective


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


@dataclass
class TrainOutcome:
    """The trained model and how the run went."""

    model: BaseVAE
    seconds: float
    epochs_run: float
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


ProgressCallback = Callable[[TrainProgress], None]


MAX_SKIPPED_STEPS = 50


class TrainingDiverged(RuntimeError):
    """The loss stayed non-finite: the run cannot produce a model."""


class TrainingCancelled(RuntimeError):
    """Raised when `should_stop` asks the loop to end."""


def seed_everything(seed: int) -> torch.Generator:
    """Seeds Python, numpy and torch; returns a torch generator for data order and binarization."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def class_index(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Dataset label values -> indices 0..K-1 into `classes` (the sorted distinct values)."""
    return np.searchsorted(classes, labels).astype(np.int64)


def train(
    config: TrainConfig,
    data: ImageDataset,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
    report_every: int = 20,
    classes: np.ndarray | None = None,
) -> TrainOutcome:
    """Trains a model of the VAE family on `data` (the training split) as `config` says.

    A conditional model takes its labels as indices into `classes`."""
    generator = seed_everything(config.seed)
    conditional = config.kind == "cvae"
    if conditional and (data.labels is None or classes is None):
        raise ValueError("a conditional VAE needs a labelled dataset")
    model = build_model(
        config, data.shape, len(classes) if conditional and classes is not None else 0
    )
    if config.objective == "iwae" and not isinstance(model, GaussianVAE):
        raise ValueError(f"objective iwae needs a Gaussian posterior: a {config.kind} has none")
    images = torch.from_numpy(data.as_float())
    labels = (
        torch.from_numpy(class_index(data.labels, classes))
        if conditional and data.labels is not None and classes is not None
        else None
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = max(1, math.ceil(len(images) / config.batch_size))
    total_steps = steps_per_epoch * config.epochs
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        if config.lr_schedule == "cosine"
        else None
    )
    started = time.monotonic()
    history: list[dict[str, float]] = []
    step = 0
    skipped = 0
    stopped_early = False
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(images), generator=generator)
        sums = {"loss": 0.0, "reconstruction": 0.0, "kl": 0.0}
        for batch_index in range(steps_per_epoch):
            if should_stop is not None and should_stop():
                raise TrainingCancelled("training was cancelled")
            rows = order[batch_index * config.batch_size : (batch_index + 1) * config.batch_size]
            batch = images[rows]
            if config.binarize == "dynamic":
                batch = torch.bernoulli(batch, generator=generator)
            weight = kl_weight(step / steps_per_epoch, config.kl_warmup_epochs, config.beta)
            y = None if labels is None else labels[rows]
            terms = batch_objective(model, batch, y, config, weight)
            loss, reconstruction, kl_value = terms.loss, terms.reconstruction, terms.kl
            optimizer.zero_grad(set_to_none=True)
            if not torch.isfinite(loss):
                # One bad batch must not poison the weights: skip it, and give up if it persists.
                skipped += 1
                if skipped > MAX_SKIPPED_STEPS:
                    raise TrainingDiverged(f"the loss was not finite for {skipped} steps")
                continue
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            recon_value, kl_nats = reconstruction.item(), kl_value.item()
            sums["loss"] += recon_value + kl_nats
            sums["reconstruction"] += recon_value
            sums["kl"] += kl_nats
            elapsed = time.monotonic() - started
            seen = batch_index + 1
            if on_progress is not None and report_due(seen, steps_per_epoch, report_every):
                means = (sums["loss"] / seen, sums["reconstruction"] / seen, sums["kl"] / seen)
                on_progress(
                    progress_of(
                        (epoch + 1, config.epochs),
                        (step, total_steps),
                        (seen, steps_per_epoch),
                        means,
                        weight,
                        config.batch_size,
                        elapsed,
                    )
                )
            if config.max_seconds is not None and elapsed > config.max_seconds:
                stopped_early = True
                break
        history.append({"epoch": epoch + 1, **{k: v / steps_per_epoch for k, v in sums.items()}})
        if stopped_early:
            break
    model.eval()
    return TrainOutcome(
        model=model,
        seconds=time.monotonic() - started,
        epochs_run=step / steps_per_epoch,
        history=history,
        stopped_early=stopped_early,
    )
