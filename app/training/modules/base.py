"""The family's base classes: what every model of the family is (BaseVAE) and what the models
with Gaussian latents share (GaussianVAE).

Every kind initialises through BaseVAE.__init__ (config, image shape, class count, likelihood)
and offers the trainer, the exporter and the evaluators the same methods: `objective`, `encode`,
`graph_encode`, `graph_decode`, `encoder_outputs`; the Gaussian kinds add `importance_terms` and
`log_weights` (the IWAE bound's terms), which a point-mass posterior (the VQ-VAE) does not have.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import nn
from torch.nn import functional as F

from app.training.config import TrainConfig
from app.training.losses import bernoulli_log_prob, gaussian_log_prob
from app.training.modules.networks import ImageShape

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


class BaseVAE(nn.Module, ABC):
    """A model of the family: an encoder from images to a latent, a decoder back, and p(x|z).

    `noise_dim` is the number of extra decoder inputs the API fills with noise (lower stochastic
    layers); `num_classes` > 0 makes the graphs take a label."""

    noise_dim: int = 0

    def __init__(self, config: TrainConfig, image: ImageShape, num_classes: int = 0) -> None:
        super().__init__()
        self.config = config
        self.image = image
        self.num_classes = num_classes
        self.likelihood = config.likelihood
        self.likelihood_model = Likelihood(config.likelihood, image)

    @property
    def latent_size(self) -> int:
        """Numbers in the latent the API shows (for hvae: the top layer's)."""
        return self.config.latent_dim

    def manifest_fields(self) -> dict[str, object]:
        """Kind-specific manifest fields (none unless a kind says otherwise)."""
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

    def log_px_given_z(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels: one value per sample."""
        return self.likelihood_model.log_prob(x, params)

    @abstractmethod
    def objective(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One stochastic pass: log p(x|z) [N] and the regulariser per column [N, D] (the KL
        per latent dimension; a VQ-VAE's weighted commitment term). The loss is their ELBO."""

    @abstractmethod
    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x in [0,1] -> (mean, log-variance) of the latent /encode shows."""

    @abstractmethod
    def graph_encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """The encoder graph's outputs, named by `encoder_outputs`."""

    @abstractmethod
    def graph_decode(
        self, z: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """The decoder graph: x_mean and logits (or x_logscale)."""

    @abstractmethod
    def encoder_outputs(self) -> list[str]:
        """Names of the encoder graph's outputs."""


class GaussianVAE(BaseVAE):
    """A model whose posterior is Gaussian: reparameterized draws, and the importance weights of
    the IWAE bound (which the trainer's `objective: iwae` and the evaluator use)."""

    @staticmethod
    def reparameterize(
        mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None
    ) -> torch.Tensor:
        """z = mu + sigma * eps with eps ~ N(0, I): randomness outside the learnable path, so
        dz/dmu = 1 and dz/dsigma = eps. `eps` may be given (tests, fixed noise)."""
        if eps is None:
            eps = torch.randn_like(mu)
        return mu + torch.exp(0.5 * logvar) * eps

    @abstractmethod
    def importance_terms(
        self, x: torch.Tensor, k: int, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """k posterior draws for each image, in one batched pass: log p(x|z_k) [k, N], the log
        prior ratio log p(z_k) - log q(z_k|x) [k, N], and the analytic KL per dimension [N, D].

        A log-weight of the IWAE bound is the sum of the first two; the trainer's IWAE objective
        scales the second by the KL warm-up weight."""

    def log_weights(self, x: torch.Tensor, k: int, y: torch.Tensor | None = None) -> torch.Tensor:
        """log p(x, z_k) - log q(z_k|x) for k posterior draws: [k, N] (the IWAE bound's terms)."""
        log_px, log_ratio, _ = self.importance_terms(x, k, y)
        return log_px + log_ratio


def repeat_batch(x: torch.Tensor, k: int) -> torch.Tensor:
    """[N, ...] -> [k*N, ...]: the batch k times over, in the order of a flattened [k, N] axis."""
    return x.expand(k, *x.shape).flatten(0, 1)
