"""The tutorial's worked examples and the objective's pieces."""

from __future__ import annotations

import math

import pytest
import torch

from app.training.losses import (
    bernoulli_log_prob,
    elbo,
    free_bits_kl,
    iwae_bound,
    kl_per_dim,
    kl_weight,
    negative_elbo,
)
from app.training.modules.vae import VAE


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)): the models' KL per dimension, summed."""
    return kl_per_dim(mu, logvar).sum(dim=-1)


def test_kl_of_the_worked_example_is_0_168() -> None:
    mu, sigma = torch.tensor([0.5]), torch.tensor([0.8])
    logvar = torch.log(sigma**2)
    assert kl_divergence(mu, logvar).item() == pytest.approx(0.168, abs=5e-4)


def test_elbo_and_loss_of_the_worked_example() -> None:
    kl = kl_divergence(torch.tensor([0.5]), torch.log(torch.tensor([0.64])))
    assert elbo(torch.tensor(-0.3), kl).item() == pytest.approx(-0.468, abs=5e-4)
    assert negative_elbo(torch.tensor(0.3), kl).item() == pytest.approx(0.468, abs=5e-4)


def test_kl_is_zero_at_the_prior() -> None:
    assert kl_divergence(torch.zeros(3), torch.zeros(3)).item() == 0.0


def test_reparameterization_gradients_through_autograd() -> None:
    mu = torch.tensor([0.5], requires_grad=True)
    sigma = torch.tensor([0.8], requires_grad=True)
    z = VAE.reparameterize(mu, torch.log(sigma**2), eps=torch.tensor([1.2]))
    assert z.item() == pytest.approx(1.46, abs=1e-6)
    loss = (0.3 * z).sum()  # a decoder loss with dL/dz = 0.3
    loss.backward()
    assert mu.grad is not None and sigma.grad is not None
    assert mu.grad.item() == pytest.approx(0.3, abs=1e-6)
    assert sigma.grad.item() == pytest.approx(0.36, abs=1e-6)


def test_bernoulli_log_prob_matches_the_formula() -> None:
    x = torch.tensor([[1.0, 0.0, 1.0]])
    logits = torch.tensor([[2.0, -1.0, 0.0]])
    p = torch.sigmoid(logits)
    expected = (x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum()
    assert bernoulli_log_prob(x, logits).item() == pytest.approx(expected.item(), abs=1e-5)


def test_free_bits_floor_the_kl_per_dimension() -> None:
    logvar = torch.zeros(4, 2)
    at_prior = kl_per_dim(torch.zeros(4, 2), logvar)
    assert free_bits_kl(at_prior, 0.25).item() == pytest.approx(0.5)
    away = kl_per_dim(torch.full((4, 2), 2.0), logvar)
    assert free_bits_kl(away, 0.25).item() == pytest.approx(4.0)


def test_kl_warmup_rises_linearly_to_beta() -> None:
    assert kl_weight(0.0, 10, beta=2.0) == 0.0
    assert kl_weight(5.0, 10, beta=2.0) == pytest.approx(1.0)
    assert kl_weight(50.0, 10, beta=2.0) == 2.0
    assert kl_weight(0.0, 0, beta=1.0) == 1.0


def test_iwae_bound_is_log_mean_exp_and_above_the_mean() -> None:
    log_w = torch.tensor([[-1.0], [-3.0], [-2.0]])
    expected = math.log((math.exp(-1) + math.exp(-3) + math.exp(-2)) / 3)
    assert iwae_bound(log_w).item() == pytest.approx(expected, abs=1e-6)
    assert iwae_bound(log_w).item() >= log_w.mean().item()
