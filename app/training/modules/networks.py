"""Encoder and decoder bodies: an MLP and a small strided convolutional network."""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from app.training.config import TrainConfig

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
}

ImageShape = tuple[int, int, int]


def _mlp(sizes: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [nn.Linear(fan_in, fan_out), ACTIVATIONS[activation]()]
    return nn.Sequential(*layers)


def _with(features: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
    """Appends a conditioning vector (a one-hot label) to features, when there is one."""
    return features if cond is None else torch.cat([features, cond], dim=1)


def strided_convs(channels: int, widths: list[int], activation: str) -> tuple[list[nn.Module], int]:
    """Stride-2 4x4 convolutions, each followed by the activation: each halves the grid. Returns
    the layers and the channels they end with."""
    layers: list[nn.Module] = []
    for out in widths:
        layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), ACTIVATIONS[activation]()]
        channels = out
    return layers, channels


class GaussianEncoder(nn.Module):
    """An encoder body (`features`, defined by each architecture) and a linear head to the
    posterior's (mu, logvar)."""

    head: nn.Linear

    def features(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The body's last layer (a ladder VAE builds its upper layer on it)."""
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, cond: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.head(self.features(x, cond)).chunk(2, dim=1)
        return mu, logvar


class MLPEncoder(GaussianEncoder):
    """x [N,C,H,W] (+ a condition [N,K]) -> (mu, logvar) [N,D] through fully connected layers."""

    def __init__(
        self, config: TrainConfig, image: ImageShape, latent_dim: int, condition: int = 0
    ) -> None:
        super().__init__()
        pixels = math.prod(image)
        self.body = _mlp([pixels + condition, *config.hidden], config.activation)
        self.head = nn.Linear(config.hidden[-1], 2 * latent_dim)

    def features(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The last hidden layer."""
        out: torch.Tensor = self.body(_with(x.flatten(1), cond))
        return out


class MLPDecoder(nn.Module):
    """z [N,D] (+ a condition [N,K]) -> pixel parameters [N,C,H,W] (logits or unconstrained means)."""

    def __init__(
        self, config: TrainConfig, image: ImageShape, latent_dim: int, condition: int = 0
    ) -> None:
        super().__init__()
        self.image = image
        self.body = _mlp([latent_dim + condition, *reversed(config.hidden)], config.activation)
        self.head = nn.Linear(config.hidden[0], math.prod(image))

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.body(_with(z, cond))).view(-1, *self.image)


def conv_grid(image: ImageShape, layers: int) -> tuple[int, int]:
    """The grid after `layers` stride-2 convolutions (odd sizes round up: see pad_to_grid)."""
    height, width = image[1], image[2]
    for _ in range(layers):
        height, width = (height + 1) // 2, (width + 1) // 2
    return height, width


def pad_to_grid(x: torch.Tensor, layers: int) -> torch.Tensor:
    """Pads images [N,C,H,W] at the bottom and right to a multiple of 2**layers, so `layers`
    stride-2 convolutions halve the grid exactly at every layer (odd sizes round up)."""
    scale = 2**layers
    pad_h, pad_w = -x.shape[2] % scale, -x.shape[3] % scale
    if pad_h or pad_w:
        x = nn.functional.pad(x, (0, pad_w, 0, pad_h))
    return x


class ConvEncoder(GaussianEncoder):
    """Stride-2 convolutions, then a fully connected layer to (mu, logvar)."""

    def __init__(
        self, config: TrainConfig, image: ImageShape, latent_dim: int, condition: int = 0
    ) -> None:
        super().__init__()
        act = ACTIVATIONS[config.activation]
        layers, channels = strided_convs(image[0], config.conv_channels, config.activation)
        grid = conv_grid(image, len(config.conv_channels))
        self.layers = len(config.conv_channels)
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(
            nn.Linear(channels * grid[0] * grid[1] + condition, config.conv_fc), act()
        )
        self.head = nn.Linear(config.conv_fc, 2 * latent_dim)

    def features(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The fully connected layer's output."""
        out: torch.Tensor = self.fc(_with(self.convs(pad_to_grid(x, self.layers)).flatten(1), cond))
        return out


class ConvDecoder(nn.Module):
    """The mirror of ConvEncoder: fully connected, then stride-2 transposed convolutions."""

    def __init__(
        self, config: TrainConfig, image: ImageShape, latent_dim: int, condition: int = 0
    ) -> None:
        super().__init__()
        act = ACTIVATIONS[config.activation]
        self.image = image
        self.grid = conv_grid(image, len(config.conv_channels))
        channels = list(reversed(config.conv_channels))
        self.fc = nn.Sequential(
            nn.Linear(latent_dim + condition, config.conv_fc),
            act(),
            nn.Linear(config.conv_fc, channels[0] * self.grid[0] * self.grid[1]),
            act(),
        )
        layers: list[nn.Module] = []
        for fan_in, fan_out in zip(channels, [*channels[1:], image[0]], strict=True):
            layers += [nn.ConvTranspose2d(fan_in, fan_out, 4, stride=2, padding=1), act()]
        self.features = nn.Sequential(*layers[:-1])  # no activation on the output
        self.channels0 = channels[0]

    def forward(self, z: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        h = self.fc(_with(z, cond)).view(-1, self.channels0, self.grid[0], self.grid[1])
        out = self.features(h)
        return out[:, :, : self.image[1], : self.image[2]]


Encoder = MLPEncoder | ConvEncoder
Decoder = MLPDecoder | ConvDecoder


def build_networks(
    config: TrainConfig, image: ImageShape, latent_dim: int | None = None, condition: int = 0
) -> tuple[Encoder, Decoder]:
    """The encoder and decoder bodies the config asks for; `condition` extra inputs (a one-hot
    label) go into both."""
    dim = latent_dim or config.latent_dim
    if config.arch == "conv":
        return ConvEncoder(config, image, dim, condition), ConvDecoder(
            config, image, dim, condition
        )
    return MLPEncoder(config, image, dim, condition), MLPDecoder(config, image, dim, condition)
