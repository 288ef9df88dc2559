"""The VQ-VAE: a convolutional encoder to a grid of D-dimensional vectors z_e, each replaced by
its nearest codebook entry, a convolutional decoder back to the image, and a gated PixelCNN
prior over the grid of code indices (trained afterwards, see app/training/prior.py).

It initialises through the family's BaseVAE and offers its methods to the trainer and the
exporter (not the IWAE terms: a point-mass posterior has none). For the trainer, `objective`
gives log p(x|z_q) and, where the Gaussian kinds give the KL per dimension, the commitment term
commitment_cost * ||z_e - sg(q)||^2 as one column: the training loss is their sum (the codebook
learns by EMA, so there is no codebook term). The graphs: the encoder gives z_e [N,D,h,w] and
the codes [N,h,w]; the decoder takes any z [N, D*h*w] (the flattened grid), quantizes it to the
nearest codes and decodes, so a codebook vector decodes as its code and an interpolation of z_e
decodes as the codes it passes through.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from app.training.config import TrainConfig
from app.training.modules.base import BaseVAE
from app.training.modules.networks import (
    ACTIVATIONS,
    ImageShape,
    conv_grid,
    pad_to_grid,
    strided_convs,
)
from app.training.modules.pixelcnn import PixelCNN
from app.training.modules.vq import VectorQuantizer


class GridEncoder(nn.Module):
    """x [N,C,H,W] -> z_e [N,D,h,w]: stride-2 convolutions (28x28 -> 7x7 with two), a 3x3
    convolution and a 1x1 projection to the code dimension."""

    def __init__(self, config: TrainConfig, image: ImageShape) -> None:
        super().__init__()
        act = ACTIVATIONS[config.activation]
        layers, channels = strided_convs(image[0], config.conv_channels, config.activation)
        layers += [
            nn.Conv2d(channels, channels, 3, padding=1),
            act(),
            nn.Conv2d(channels, config.embedding_dim, 1),
        ]
        self.body = nn.Sequential(*layers)
        self.layers = len(config.conv_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(pad_to_grid(x, self.layers))
        return out


class GridDecoder(nn.Module):
    """z_q [N,D,h,w] -> pixel parameters [N,C,H,W]: the mirror of GridEncoder."""

    def __init__(self, config: TrainConfig, image: ImageShape) -> None:
        super().__init__()
        act = ACTIVATIONS[config.activation]
        self.image = image
        channels = list(reversed(config.conv_channels))
        layers: list[nn.Module] = [
            nn.Conv2d(config.embedding_dim, channels[0], 3, padding=1),
            act(),
            nn.Conv2d(channels[0], channels[0], 3, padding=1),
            act(),
        ]
        for fan_in, fan_out in zip(channels, [*channels[1:], image[0]], strict=True):
            layers += [nn.ConvTranspose2d(fan_in, fan_out, 4, stride=2, padding=1), act()]
        self.body = nn.Sequential(*layers[:-1])  # no activation on the output

    def forward(self, z_q: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.body(z_q)
        return out[:, :, : self.image[1], : self.image[2]]


class VQVAE(BaseVAE):
    """A discrete latent grid: h x w codes out of `num_embeddings`, each a vector of
    `embedding_dim` numbers, with a learned autoregressive prior over the codes."""

    def __init__(self, config: TrainConfig, image: ImageShape) -> None:
        super().__init__(config, image)
        self.grid = conv_grid(image, len(config.conv_channels))
        self.embedding_dim = config.embedding_dim
        self.grid_encoder = GridEncoder(config, image)
        self.grid_decoder = GridDecoder(config, image)
        self.quantizer = VectorQuantizer(
            config.num_embeddings,
            config.embedding_dim,
            decay=config.ema_decay,
            patience=config.dead_code_patience,
        )
        self.prior = PixelCNN(config.num_embeddings, config.prior_channels, config.prior_layers)

    @property
    def latent_size(self) -> int:
        """The flattened grid: D * h * w numbers."""
        return self.embedding_dim * math.prod(self.grid)

    def manifest_fields(self) -> dict[str, object]:
        """The code grid, the codebook size and the code dimension, for the manifest."""
        return {
            "grid": list(self.grid),
            "codebook_size": self.config.num_embeddings,
            "embedding_dim": self.embedding_dim,
        }

    def objective(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(x|z_q) [N] and the weighted commitment term [N,1] (updates the codebook in
        training mode)."""
        quantized, _, commitment = self.quantizer(self.grid_encoder(x))
        log_px = self.log_px_given_z(x, self.grid_decoder(quantized))
        return log_px, self.config.commitment_cost * commitment[:, None]

    def encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The flattened z_e and a log-variance of -inf: the encoder is deterministic."""
        z_e = self.grid_encoder(x).flatten(1)
        return z_e, torch.full_like(z_e, -math.inf)

    def codes(self, x: torch.Tensor) -> torch.Tensor:
        """The code grid [N,h,w] of images x."""
        return self.quantizer.quantize(self.grid_encoder(x))[0]

    def graph_encode(
        self, x: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """The encoder graph: z_e [N,D,h,w] and the codes [N,h,w]."""
        z_e = self.grid_encoder(x)
        codes, _ = self.quantizer.quantize(z_e)
        return z_e, codes

    def encoder_outputs(self) -> list[str]:
        """z_e and codes."""
        return ["z_e", "codes"]

    def graph_decode(
        self, z: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        """z [N, D*h*w] -> nearest codes -> x_mean and logits (or x_logscale)."""
        grid = z.reshape(-1, self.embedding_dim, self.grid[0], self.grid[1])
        _, quantized = self.quantizer.quantize(grid)
        return self.likelihood_model.graph_outputs(self.grid_decoder(quantized))
