"""The Gaussian-latent VAE: encode, reparameterize, decode, and the likelihood of x given z."""

from __future__ import annotations

import math

import torch
from torch import nn

from app.training.config import TrainConfig
from app.training.losses import bernoulli_log_prob, gaussian_log_prob
from app.training.modules.networks import ImageShape, build_networks

# Bounds on the Gaussian decoder's per-pixel log standard deviation keep the likelihood finite.
MIN_LOGSCALE, MAX_LOGSCALE = -5.0, 2.0


class VAE(nn.Module):
    """q(z|x) = N(mu, diag(exp(logvar))), p(z) = N(0, I), p(x|z) Bernoulli or Gaussian."""

    def __init__(self, config: TrainConfig, image: ImageShape) -> None:
        super().__init__()
        self.config = config
        self.image = image
        self.encoder, self.decoder = build_networks(config, image)
        self.likelihood = config.likelihood
        if self.likelihood == "gaussian":
            self.logscale = nn.Parameter(torch.full(image, math.log(0.1)))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x in [0,1] -> (mu, logvar)."""
        mu, logvar = self.encoder(x)
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

    def decode_params(self, z: torch.Tensor) -> torch.Tensor:
        """Raw decoder output: Bernoulli logits or unconstrained Gaussian means."""
        out: torch.Tensor = self.decoder(z)
        return out

    def pixel_scale(self) -> torch.Tensor:
        """Per-pixel log standard deviation of the Gaussian likelihood."""
        return self.logscale.clamp(MIN_LOGSCALE, MAX_LOGSCALE)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The decoded image in [0,1]."""
        return torch.sigmoid(params)

    def log_px_given_z(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """log p(x|z) summed over pixels: one value per sample."""
        if self.likelihood == "bernoulli":
            return bernoulli_log_prob(x, params)
        return gaussian_log_prob(x, torch.sigmoid(params), self.pixel_scale())

    def forward(
        self, x: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """One stochastic pass: (log p(x|z), mu, logvar, z)."""
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.log_px_given_z(x, self.decode_params(z)), mu, logvar, z


def build_model(config: TrainConfig, image: ImageShape) -> VAE:
    """The model a config describes, for images of shape (C, H, W)."""
    return VAE(config, image)
