"""The Gaussian-latent VAE (and its conditional form): encode, reparameterize, decode, and the
likelihood of x given z. Every model of the family offers the same four methods to the trainer,
the exporter and the evaluator: `objective`, `log_weights`, `graph_encode`, `graph_decode`."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from app.training.config import TrainConfig
from app.training.losses import (
    bernoulli_log_prob,
    diagonal_normal_log_prob,
    gaussian_log_prob,
    kl_per_dim,
    standard_normal_log_prob,
)
from app.training.modules.networks import ImageShape, build_networks

# Bounds on the Gaussian decoder's per-pixel log standard deviation keep the likelihood finite.
MIN_LOGSCALE, MAX_LOGSCALE = -5.0, 2.0


class Likelihood(nn.Module):
    """p(x|z) from the decoder's raw output: Bernoulli logits, or Gaussian means with a learned
    per-pixel scale."""

    def __init__(self, kind: str, image: ImageShape) -> None:
        super().__init__()
        self.kind = kind
        if kind == "gaussian":
            self.logscale = nn.Parameter(torch.full(image, math.log(0.1)))

    def pixel_scale(self) -> torch.Tensor:
        """Per-pixel log standard deviation of the Gaussian likelihood."""
        return self.logscale.clamp(MIN_LOGSCALE, MAX_LOGSCALE)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The decoded image in [0,1]."""
        return torch.sigmoid(params)

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels: one value per sample."""
        if self.kind == "bernoulli":
            return bernoulli_log_prob(x, params)
        return gaussian_log_prob(x, torch.sigmoid(params), self.pixel_scale())

    def graph_outputs(self, params: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What the decoder graph gives: x_mean, and logits or x_logscale."""
        mean = self.mean(params)
        if self.kind == "bernoulli":
            return mean, params
        return mean, torch.zeros_like(mean) + self.pixel_scale()


class VAE(nn.Module):
    """q(z|x[,y]) = N(mu, diag(exp(logvar))), p(z) = N(0, I), p(x|z[,y]) Bernoulli or Gaussian.

    With `num_classes` > 0 it is the conditional VAE: encoder and decoder also see the label."""

    noise_dim = 0

    def __init__(self, config: TrainConfig, image: ImageShape, num_classes: int = 0) -> None:
        super().__init__()
        self.config = config
        self.image = image
        self.num_classes = num_classes
        self.encoder, self.decoder = build_networks(config, image, condition=num_classes)
        self.likelihood_model = Likelihood(config.likelihood, image)
        self.likelihood = config.likelihood

    @property
    def latent_size(self) -> int:
        """Numbers in the latent the API shows (for hvae: the top layer's)."""
        return self.config.latent_dim

    def manifest_fields(self) -> dict[str, object]:
        """Kind-specific manifest fields (none for the Gaussian kinds)."""
        return {}

    @property
    def conditional(self) -> bool:
        """True when encoder and decoder take a label."""
        return self.num_classes > 0

    def condition(self, y: torch.Tensor | None) -> torch.Tensor | None:
        """The one-hot label the networks take (None for an unconditional model)."""
        if not self.conditional:
            return None
        if y is None:
            raise ValueError("a conditional VAE needs labels")
        return F.one_hot(y.long(), self.num_classes).float()

    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x in [0,1] -> (mu, logvar)."""
        mu, logvar = self.encoder(x, self.condition(y))
        return mu, logvar

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I): randomness outside the learnable path, so
        dz/dmu = 1 and dz/dsigma = eps. `eps` may be given (tests, fixed noise)."""
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode_params(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Raw decoder output: Bernoulli logits or unconstrained Gaussian means."""
        out: torch.Tensor = self.decoder(z, self.condition(y))
        return out

    def log_px_given_z(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels: one value per sample."""
        return self.likelihood_model.log_prob(x, params)

    def objective(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One stochastic pass: log p(x|z) [N] and the KL of every latent dimension [N, D]."""
        mu, logvar = self.encode(x, y)
        z = self.reparameterize(mu, logvar)
        return self.log_px_given_z(x, self.decode_params(z, y)), kl_per_dim(mu, logvar)

    def importance_terms(
        self, x: torch.Tensor, k: int, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """k posterior draws for each image, in one batched pass: log p(x|z_k) [k, N], the log
        prior ratio log p(z_k) - log q(z_k|x) [k, N], and the analytic KL per dimension [N, D].

        A log-weight of the IWAE bound is the sum of the first two; the trainer's IWAE objective
        scales the second by the KL warm-up weight."""
        mu, logvar = self.encode(x, y)
        z = self.reparameterize(mu, logvar, torch.randn((k, *mu.shape), dtype=mu.dtype))
        params = self.decode_params(z.flatten(0, 1), None if y is None else y.repeat(k))
        log_px = self.log_px_given_z(_repeat(x, k), params).view(k, -1)
        log_ratio = standard_normal_log_prob(z) - diagonal_normal_log_prob(z, mu, logvar)
        return log_px, log_ratio, kl_per_dim(mu, logvar)

    def log_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x, z_k) - log q(z_k|x) for k posterior draws: [k, N] (the IWAE bound's terms)."""
        log_px, log_ratio, _ = self.importance_terms(x, k, y)
        return log_px + log_ratio

    def graph_encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """The encoder graph: mu, logvar."""
        return self.encode(x, y)

    def graph_decode(
        self, z: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """The decoder graph: x_mean and logits (or x_logscale)."""
        return self.likelihood_model.graph_outputs(self.decode_params(z, y))

    def encoder_outputs(self) -> list[str]:
        """Names of the encoder graph's outputs."""
        return ["mu", "logvar"]


def _repeat(x: torch.Tensor, k: int) -> torch.Tensor:
    """[N, ...] -> [k*N, ...]: the batch k times over, in the order of a flattened [k, N] axis."""
    return x.expand(k, *x.shape).flatten(0, 1)
