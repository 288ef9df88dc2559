"""The Gaussian-latent VAE (and its conditional form): encode, reparameterize, decode, and the
likelihood of x given z, on the family's base (app/training/modules/base.py)."""

from __future__ import annotations

import torch

from app.training.config import TrainConfig
from app.training.losses import diagonal_normal_log_prob, kl_per_dim, standard_normal_log_prob
from app.training.modules.base import GaussianVAE, repeat_batch
from app.training.modules.networks import ImageShape, build_networks


class VAE(GaussianVAE):
    """q(z|x[,y]) = N(mu, diag(exp(logvar))), p(z) = N(0, I), p(x|z[,y]) Bernoulli or Gaussian.

    With `num_classes` > 0 it is the conditional VAE: encoder and decoder also see the label."""

    def __init__(self, config: TrainConfig, image: ImageShape, num_classes: int = 0) -> None:
        super().__init__(config, image, num_classes)
        self.encoder, self.decoder = build_networks(config, image, condition=num_classes)

    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x in [0,1] -> (mu, logvar)."""
        mu, logvar = self.encoder(x, self.condition(y))
        return mu, logvar

    def decode_params(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Raw decoder output: Bernoulli logits or unconstrained Gaussian means."""
        out: torch.Tensor = self.decoder(z, self.condition(y))
        return out

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
        """GaussianVAE.importance_terms for one Gaussian layer z ~ q(z|x[,y])."""
        mu, logvar = self.encode(x, y)
        z = self.reparameterize(mu, logvar, torch.randn((k, *mu.shape), dtype=mu.dtype))
        params = self.decode_params(z.flatten(0, 1), None if y is None else y.repeat(k))
        log_px = self.log_px_given_z(repeat_batch(x, k), params).view(k, -1)
        log_ratio = standard_normal_log_prob(z) - diagonal_normal_log_prob(z, mu, logvar)
        return log_px, log_ratio, kl_per_dim(mu, logvar)

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
