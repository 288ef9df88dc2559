"""The training loop: Adam, dynamic binarization, KL warm-up, free bits, progress and cancel."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from app.datasets.arrays import ImageDataset
from app.repository.kinds import model_kind
from app.training.config import TrainConfig
from app.training.data import class_index, seed_everything
from app.training.hooks import (
    ProgressCallback,
    TrainingCancelled,
    TrainingHooks,
    progress_of,
    report_due,
)
from app.training.kinds import build_model
from app.training.losses import kl_weight
from app.training.modules import BaseVAE
from app.training.objectives import batch_objective


@dataclass
class TrainOutcome:
    """The trained model and how the run went."""

    model: BaseVAE
    seconds: float
    epochs_run: float
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


MAX_SKIPPED_STEPS = 50


class TrainingDiverged(RuntimeError):
    """The loss stayed non-finite: the run cannot produce a model."""


@dataclass
class _Loop:
    """The optimisation state of one training run."""

    config: TrainConfig
    model: BaseVAE
    images: torch.Tensor
    labels: torch.Tensor | None
    generator: torch.Generator
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    steps_per_epoch: int
    started: float = field(default_factory=time.monotonic)
    step: int = 0
    skipped: int = 0
    stopped_early: bool = False

    @classmethod
    def start(
        cls,
        config: TrainConfig,
        model: BaseVAE,
        images: torch.Tensor,
        labels: torch.Tensor | None,
        generator: torch.Generator,
    ) -> _Loop:
        """Adam over the model's parameters, with the cosine schedule when `config` asks."""
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        steps_per_epoch = max(1, math.ceil(len(images) / config.batch_size))
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(
                optimizer, T_max=steps_per_epoch * config.epochs
            )
            if config.lr_schedule == "cosine"
            else None
        )
        return cls(config, model, images, labels, generator, optimizer, scheduler, steps_per_epoch)

    def optimise(self, rows: torch.Tensor, weight: float) -> tuple[float, float] | None:
        """One step on the batch `rows`: its (reconstruction, kl), or None when its loss was not
        finite (skipped: one bad batch must not poison the weights; TrainingDiverged if it
        persists)."""
        batch = self.images[rows]
        if self.config.binarize == "dynamic":
            batch = torch.bernoulli(batch, generator=self.generator)
        y = None if self.labels is None else self.labels[rows]
        terms = batch_objective(self.model, batch, y, self.config, weight)
        self.optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(terms.loss):
            self.skipped += 1
            if self.skipped > MAX_SKIPPED_STEPS:
                raise TrainingDiverged(f"the loss was not finite for {self.skipped} steps")
            return None
        terms.loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.step += 1
        return terms.reconstruction.item(), terms.kl.item()

    def epoch(self, epoch: int, hooks: TrainingHooks, every: int) -> dict[str, float]:
        """One pass over the data in a fresh order; the epoch's mean loss terms."""
        config, steps = self.config, self.steps_per_epoch
        order = torch.randperm(len(self.images), generator=self.generator)
        sums = {"loss": 0.0, "reconstruction": 0.0, "kl": 0.0}
        for batch_index in range(steps):
            if hooks.stopped():
                raise TrainingCancelled("training was cancelled")
            rows = order[batch_index * config.batch_size : (batch_index + 1) * config.batch_size]
            weight = kl_weight(self.step / steps, config.kl_warmup_epochs, config.beta)
            terms = self.optimise(rows, weight)
            if terms is None:
                continue
            sums["loss"] += terms[0] + terms[1]
            sums["reconstruction"] += terms[0]
            sums["kl"] += terms[1]
            elapsed = time.monotonic() - self.started
            seen = batch_index + 1
            if report_due(seen, steps, every):
                means = (sums["loss"] / seen, sums["reconstruction"] / seen, sums["kl"] / seen)
                hooks.progress(
                    progress_of(
                        (epoch + 1, config.epochs),
                        (self.step, steps * config.epochs),
                        (seen, steps),
                        means,
                        weight,
                        config.batch_size,
                        elapsed,
                    )
                )
            if config.max_seconds is not None and elapsed > config.max_seconds:
                self.stopped_early = True
                break
        return {"epoch": epoch + 1, **{k: v / steps for k, v in sums.items()}}


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
    conditional = model_kind(config.kind).conditional
    if conditional and (data.labels is None or classes is None):
        raise ValueError("a conditional VAE needs a labelled dataset")
    model = build_model(
        config, data.shape, len(classes) if conditional and classes is not None else 0
    )
    labels = (
        torch.from_numpy(class_index(data.labels, classes))
        if conditional and data.labels is not None and classes is not None
        else None
    )
    loop = _Loop.start(config, model, torch.from_numpy(data.as_float()), labels, generator)
    hooks = TrainingHooks(on_progress=on_progress, should_stop=should_stop)
    history: list[dict[str, float]] = []
    model.train()
    for epoch in range(config.epochs):
        history.append(loop.epoch(epoch, hooks, report_every))
        if loop.stopped_early:
            break
    model.eval()
    return TrainOutcome(
        model=model,
        seconds=time.monotonic() - loop.started,
        epochs_run=loop.step / loop.steps_per_epoch,
        history=history,
        stopped_early=loop.stopped_early,
    )
