"""A hierarchical VAE with two stochastic layers and ladder-style inference (Sønderby et al. 2016).

Generative: z2 ~ N(0, I), z1 ~ p(z1|z2) = N(mu_p(z2), var_p(z2)), x ~ p(x|z1).
Inference: a bottom-up pass gives likelihood-like terms for both layers; q(z2|x) uses the top
one, and q(z1|z2,x) combines the bottom one with the top-down prior by precision weighting.
The decoder graph takes [z2, eps1]: the API supplies eps1 (zeros for the mean, N(0, I) draws
for ancestral sampling), so the graph stays deterministic.
"""

from __future__ import annotations

import torch
from torch import nn

from app.training.config import TrainConfig
from app.training.losses import (
    diagonal_normal_log_prob,
    kl_between_diagonal,
    kl_per_dim,
    standard_normal_log_prob,
)
from app.training.modules.base import GaussianVAE, repeat_batch
from app.training.modules.networks import ACTIVATIONS, ImageShape, build_networks


def _gaussian_head(fan_in: int, hidden: int, out: int, activation: str) -> nn.Sequential:
    act = ACTIVATIONS[activation]
    return nn.Sequential(
        nn.Linear(fan_in, hidden),
        act(),
        nn.Linear(hidden, hidden),
        act(),
        nn.Linear(hidden, 2 * out),
    )


LOGVAR_LIMIT = 10.0


def bounded(logvar: torch.Tensor) -> torch.Tensor:
    """A log-variance squashed smoothly into (-LOGVAR_LIMIT, LOGVAR_LIMIT). The precision-weighted
    merge and the layers' densities take exp(-logvar): unbounded, one overconfident unit
    overflowed them and a long IWAE run diverged to NaN at epoch 63 of 200."""
    return LOGVAR_LIMIT * torch.tanh(logvar / LOGVAR_LIMIT)


class LadderVAE(GaussianVAE):
    """Two stochastic layers: z2 (`latent_dim`, what /encode returns) above z1 (`bottom_latent_dim`)."""

    def __init__(self, config: TrainConfig, image: ImageShape, num_classes: int = 0) -> None:
        super().__init__(config, image)
        self.top_dim = config.latent_dim
        self.bottom_dim = config.bottom_latent_dim
        self.noise_dim = self.bottom_dim
        self.encoder, self.decoder = build_networks(config, image, latent_dim=self.bottom_dim)
        width = config.hidden[-1] if config.arch == "mlp" else config.conv_fc
        hidden = max(64, width // 2)
        self.up = _gaussian_head(width, hidden, self.top_dim, config.activation)
        self.down = _gaussian_head(self.top_dim, hidden, self.bottom_dim, config.activation)

    def bottom_up(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(mu2, logvar2) of q(z2|x) and the bottom layer's (mu_hat1, logvar_hat1)."""
        features = self.encoder.features(x)
        mu1, logvar1 = self.encoder.head(features).chunk(2, dim=1)
        mu2, logvar2 = self.up(features).chunk(2, dim=1)
        return mu2, bounded(logvar2), mu1, bounded(logvar1)

    def prior_bottom(self, z2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p(z1|z2): (mu, logvar)."""
        mu, logvar = self.down(z2).chunk(2, dim=1)
        return mu, bounded(logvar)

    @staticmethod
    def combine(
        mu_hat: torch.Tensor, logvar_hat: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Precision-weighted merge of the bottom-up term and the top-down prior: q(z1|z2,x)."""
        precision_hat, precision_p = torch.exp(-logvar_hat), torch.exp(-logvar_p)
        variance = 1.0 / (precision_hat + precision_p)
        mu = (mu_hat * precision_hat + mu_p * precision_p) * variance
        return mu, torch.log(variance)

    def _pass(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        mu2, logvar2, mu_hat1, logvar_hat1 = self.bottom_up(x)
        z2 = self.reparameterize(mu2, logvar2)
        mu_p1, logvar_p1 = self.prior_bottom(z2)
        mu_q1, logvar_q1 = self.combine(mu_hat1, logvar_hat1, mu_p1, logvar_p1)
        z1 = self.reparameterize(mu_q1, logvar_q1)
        log_px = self.log_px_given_z(x, self.decoder(z1))
        return log_px, z2, mu2, logvar2, z1, mu_q1, logvar_q1, mu_p1, logvar_p1

    def objective(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(x|z1) [N] and the KL of both layers per dimension [N, D2 + D1]."""
        log_px, _, mu2, logvar2, _, mu_q1, logvar_q1, mu_p1, logvar_p1 = self._pass(x)
        kl_top = kl_per_dim(mu2, logvar2)
        kl_bottom = kl_between_diagonal(mu_q1, logvar_q1, mu_p1, logvar_p1)
        return log_px, torch.cat([kl_top, kl_bottom], dim=1)

    def importance_terms(
        self, x: torch.Tensor, k: int, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As GaussianVAE.importance_terms, with z = (z2, z1): log p(x|z1) [k, N], log p(z2) p(z1|z2) -
        log q(z2|x) q(z1|z2,x) [k, N], and the KL of both layers per dimension (the lower one
        at the first draw of z2) [N, D2 + D1]."""
        mu2, logvar2, mu_hat1, logvar_hat1 = self.bottom_up(x)
        z2 = self.reparameterize(mu2, logvar2, torch.randn((k, *mu2.shape), dtype=mu2.dtype))
        mu_p1, logvar_p1 = (
            t.view(k, -1, self.bottom_dim) for t in self.prior_bottom(z2.flatten(0, 1))
        )
        mu_q1, logvar_q1 = self.combine(mu_hat1, logvar_hat1, mu_p1, logvar_p1)
        z1 = self.reparameterize(mu_q1, logvar_q1)
        log_px = self.log_px_given_z(repeat_batch(x, k), self.decoder(z1.flatten(0, 1))).view(k, -1)
        log_ratio = (
            standard_normal_log_prob(z2)
            + diagonal_normal_log_prob(z1, mu_p1, logvar_p1)
            - diagonal_normal_log_prob(z2, mu2, logvar2)
            - diagonal_normal_log_prob(z1, mu_q1, logvar_q1)
        )
        kl_dims = torch.cat(
            [
                kl_per_dim(mu2, logvar2),
                kl_between_diagonal(mu_q1[0], logvar_q1[0], mu_p1[0], logvar_p1[0]),
            ],
            dim=1,
        )
        return log_px, log_ratio, kl_dims

    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The top layer's posterior (mu2, logvar2)."""
        mu2, logvar2, _, _ = self.bottom_up(x)
        return mu2, logvar2

    def graph_encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """mu, logvar of z2, and mu_bottom, logvar_bottom of q(z1|z2 = mu2, x)."""
        mu2, logvar2, mu_hat1, logvar_hat1 = self.bottom_up(x)
        mu_q1, logvar_q1 = self.combine(mu_hat1, logvar_hat1, *self.prior_bottom(mu2))
        return mu2, logvar2, mu_q1, logvar_q1

    def encoder_outputs(self) -> list[str]:
        """mu, logvar (the top layer), mu_bottom, logvar_bottom."""
        return ["mu", "logvar", "mu_bottom", "logvar_bottom"]

    def graph_decode(
        self, z: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """[z2, eps1] -> z1 = mu_p(z2) + sigma_p(z2) * eps1 -> x_mean and logits (or x_logscale)."""
        z2, eps1 = z[:, : self.top_dim], z[:, self.top_dim :]
        mu_p1, logvar_p1 = self.prior_bottom(z2)
        z1 = self.reparameterize(mu_p1, logvar_p1, eps1)
        return self.likelihood_model.graph_outputs(self.decoder(z1))
