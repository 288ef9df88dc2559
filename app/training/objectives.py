"""The training objective of one batch: the ELBO with its analytic KL, or the importance-weighted
bound of Burda et al. (2015), both with the KL warm-up weight and free bits.

How the two settings carry over to the IWAE objective: warm-up scales the log prior ratio
log p(z) - log q(z|x) inside every importance weight (at weight 1 the bound is the true IWAE
bound); free bits add the batch's shortfall of each dimension's analytic KL under the floor,
which cancels the bound's pull towards the prior on those dimensions as free bits do for the
ELBO. With k = 1 the IWAE objective is the ELBO estimated with one sample of the KL."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from app.training.config import TrainConfig
from app.training.losses import (
    annealed_iwae_bound,
    free_bits_kl,
    free_bits_shortfall,
    negative_elbo,
)
from app.training.modules import BaseVAE, GaussianVAE


@dataclass(frozen=True)
class BatchObjective:
    """What one batch gives the optimizer (`loss`) and the progress report (the means of the
    reconstruction NLL and the analytic KL, in nats an image)."""

    loss: torch.Tensor
    reconstruction: torch.Tensor
    kl: torch.Tensor


def elbo_objective(
    model: BaseVAE,
    x: torch.Tensor,
    y: torch.Tensor | None = None,
    kl_weight: float = 1.0,
    free_bits: float = 0.0,
) -> BatchObjective:
    """The negative ELBO, reconstruction + weight * KL (with free bits: the floored KL)."""
    log_px_z, kl_dims = model.objective(x, y)
    reconstruction = -log_px_z.mean()
    kl = kl_dims.sum(dim=1).mean()
    kl_term = free_bits_kl(kl_dims, free_bits) if free_bits > 0 else kl
    return BatchObjective(negative_elbo(reconstruction, kl_term, kl_weight), reconstruction, kl)


def iwae_objective(
    model: GaussianVAE,
    x: torch.Tensor,
    k: int,
    y: torch.Tensor | None = None,
    kl_weight: float = 1.0,
    free_bits: float = 0.0,
) -> BatchObjective:
    """The negative IWAE bound with k posterior draws an image."""
    log_px, log_ratio, kl_dims = model.importance_terms(x, k, y)
    loss = -annealed_iwae_bound(log_px, log_ratio, kl_weight).mean()
    if free_bits > 0:
        loss = loss + kl_weight * free_bits_shortfall(kl_dims, free_bits)
    return BatchObjective(loss, -log_px.mean(), kl_dims.sum(dim=1).mean())


def batch_objective(
    model: BaseVAE,
    x: torch.Tensor,
    y: torch.Tensor | None,
    config: TrainConfig,
    kl_weight: float,
) -> BatchObjective:
    """The objective `config` names, for one batch."""
    if config.objective == "iwae":
        if not isinstance(model, GaussianVAE):
            raise ValueError(f"objective iwae needs a Gaussian posterior: a {config.kind} has none")
        return iwae_objective(model, x, config.iwae_k, y, kl_weight, config.free_bits)
    return elbo_objective(model, x, y, kl_weight, config.free_bits)
