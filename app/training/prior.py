"""The VQ-VAE's second stage: fit its PixelCNN prior to the code grids of the training images
(cross-entropy, i.e. maximum likelihood of the codes) once the encoder and codebook are fixed."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch

from app.datasets.arrays import ImageDataset
from app.training.config import TrainConfig
from app.training.hooks import ProgressCallback, TrainingCancelled, progress_of, report_due
from app.training.modules import VQVAE

ENCODE_BATCH = 512


@torch.no_grad()
def code_grids(model: VQVAE, images: torch.Tensor) -> torch.Tensor:
    """The code grid [N,h,w] of every image, in batches (the model in eval mode)."""
    model.eval()
    return torch.cat(
        [model.codes(images[i : i + ENCODE_BATCH]) for i in range(0, len(images), ENCODE_BATCH)]
    )


def train_prior(
    config: TrainConfig,
    model: VQVAE,
    data: ImageDataset,
    generator: torch.Generator,
    on_progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> list[dict[str, float]]:
    """Trains `model.prior` for `config.prior_epochs` on the codes of `data` (binarized afresh
    every epoch when training binarized dynamically); returns the NLL (nats per grid) an epoch."""
    images = torch.from_numpy(data.as_float())
    prior = model.prior
    optimizer = torch.optim.Adam(prior.parameters(), lr=config.lr)
    steps_per_epoch = max(1, math.ceil(len(images) / config.batch_size))
    total = steps_per_epoch * config.prior_epochs
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    history: list[dict[str, float]] = []
    started, step = time.monotonic(), 0
    dynamic = config.binarize == "dynamic"
    codes = None if dynamic else code_grids(model, images)
    for epoch in range(config.prior_epochs):
        if dynamic or codes is None:
            codes = code_grids(model, torch.bernoulli(images, generator=generator))
        prior.train()
        order = torch.randperm(len(codes), generator=generator)
        running = 0.0
        for index in range(steps_per_epoch):
            if should_stop is not None and should_stop():
                raise TrainingCancelled("training was cancelled")
            batch = codes[order[index * config.batch_size : (index + 1) * config.batch_size]]
            loss = prior.nll(batch).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            running += loss.item()
            if on_progress is not None and report_due(index + 1, steps_per_epoch, 20):
                elapsed = time.monotonic() - started
                mean = running / (index + 1)  # the prior's NLL is its loss and its kl
                on_progress(
                    progress_of(
                        (epoch + 1, config.prior_epochs),
                        (step, total),
                        (index + 1, steps_per_epoch),
                        (mean, 0.0, mean),
                        1.0,
                        config.batch_size,
                        elapsed,
                    )
                )
        history.append({"epoch": epoch + 1, "prior_nll": running / steps_per_epoch})
    prior.eval()
    model.eval()
    return history
