"""The VAE objective: log-likelihoods, closed-form KL, ELBO, IWAE, free bits and KL warm-up.

Every function returns per-sample values (summed over pixels or latent dimensions) so callers
choose how to reduce them.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

LOG_2PI = math.log(2 * math.pi)


def kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, 1)) for each latent dimension: 1/2 (mu^2 + sigma^2 - ln sigma^2 - 1).

    Summed over the last axis it is KL(q(z|x) || N(0, I)); the models return it per dimension
    because free bits floor each dimension on its own."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0)


def free_bits_kl(kl_dims: torch.Tensor, free_bits: float) -> torch.Tensor:
    """KL with a floor of `free_bits` nats per dimension, for per-dimension KLs [N, D] averaged
    over the batch (Kingma et al. 2016).

    Dimensions already below the floor get no gradient pushing them further towards the prior,
    which keeps the model from collapsing them early.
    """
    return torch.clamp(kl_dims.mean(dim=0), min=free_bits).sum()


def free_bits_shortfall(kl_dims: torch.Tensor, free_bits: float) -> torch.Tensor:
    """How far the batch-averaged KL of each dimension [N, D] falls short of `free_bits`, summed:
    free_bits_kl minus the plain KL.

    Added (times the KL weight) to an objective whose KL is implicit, such as the IWAE bound, it
    cancels the pull towards the prior on dimensions under the floor, as free bits do for the ELBO."""
    return torch.clamp(free_bits - kl_dims.mean(dim=0), min=0.0).sum()


def kl_between_diagonal(
    mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
) -> torch.Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) for each dimension (a ladder VAE's lower layer)."""
    return 0.5 * (
        logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) * torch.exp(-logvar_p) - 1.0
    )


def bernoulli_log_prob(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log p(x|z) for a Bernoulli decoder, summed over all but the batch axis."""
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)


def gaussian_log_prob(x: torch.Tensor, mean: torch.Tensor, logscale: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, exp(logscale)^2), summed over all but the batch axis."""
    z = (x - mean) * torch.exp(-logscale)
    return (-0.5 * z.pow(2) - logscale - 0.5 * LOG_2PI).flatten(1).sum(1)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last axis."""
    return (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)


def diagonal_normal_log_prob(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last axis."""
    return (-0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI)).sum(-1)


def elbo(log_px_z: torch.Tensor, kl: torch.Tensor) -> torch.Tensor:
    """ELBO = E_q[log p(x|z)] - KL(q || p). With one sample, the first term is log p(x|z)."""
    return log_px_z - kl


def negative_elbo(
    reconstruction_nll: torch.Tensor, kl: torch.Tensor, beta: float = 1.0
) -> torch.Tensor:
    """The loss minimised in training: reconstruction NLL + beta * KL, the negated `elbo` of
    log p(x|z) = -reconstruction_nll with the KL weighted by beta."""
    return -elbo(-reconstruction_nll, beta * kl)


def iwae_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """log (1/K) sum_k w_k for log-weights of shape [K, N]: the IWAE bound, one value per sample."""
    k = log_weights.shape[0]
    return torch.logsumexp(log_weights, dim=0) - math.log(k)


def annealed_iwae_bound(
    log_px: torch.Tensor, log_prior_ratio: torch.Tensor, kl_weight: float = 1.0
) -> torch.Tensor:
    """The IWAE bound with KL warm-up: log-weights log p(x|z_k) + w (log p(z_k) - log q(z_k|x))
    for terms of shape [K, N]. At w = 1 it is `iwae_bound` of the true log-weights; with K = 1 it
    is the one-sample ELBO estimate, the KL estimated by its sample."""
    return iwae_bound(log_px + kl_weight * log_prior_ratio)


def kl_weight(epoch_progress: float, warmup_epochs: float, beta: float = 1.0) -> float:
    """KL annealing: the KL weight rises linearly from 0 to beta over `warmup_epochs` epochs."""
    if warmup_epochs <= 0:
        return beta
    return beta * min(1.0, epoch_progress / warmup_epochs)
