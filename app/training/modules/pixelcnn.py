"""A small gated PixelCNN (van den Oord et al. 2016) over a VQ-VAE's grid of code indices: the
learned prior p(codes) = prod_i p(c_i | c_<i) in raster order, which /sample draws from.

Two stacks avoid the blind spot of plain masked convolutions: the vertical stack sees the rows
above, the horizontal stack the codes to the left in the same row (and the vertical stack). The
first layer is mask type A (a position never sees itself), the rest type B. Causality comes
from asymmetric padding, so the network takes any grid size and its ONNX graph a dynamic one:
the sampler may run it on the rows decided so far only.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _gate(features: torch.Tensor) -> torch.Tensor:
    """tanh(a) * sigmoid(b) over the two halves of the channels."""
    a, b = features.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One gated layer of both stacks; `first` makes it mask type A."""

    def __init__(self, channels: int, kernel: int = 3, first: bool = False) -> None:
        super().__init__()
        self.reach = kernel // 2
        self.first = first
        self.vertical = nn.Conv2d(channels, 2 * channels, (self.reach + 1, kernel))
        self.horizontal = nn.Conv2d(channels, 2 * channels, (1, self.reach + 1))
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.residual = nn.Conv2d(channels, channels, 1)
        vertical_mask = torch.ones_like(self.vertical.weight)
        horizontal_mask = torch.ones_like(self.horizontal.weight)
        if first:
            vertical_mask[:, :, -1] = 0.0  # not the current row
            horizontal_mask[:, :, :, -1] = 0.0  # not the current position
        self.register_buffer("vertical_mask", vertical_mask)
        self.register_buffer("horizontal_mask", horizontal_mask)
        self.vertical_mask: torch.Tensor
        self.horizontal_mask: torch.Tensor

    def forward(self, v: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        reach = self.reach
        # Output row i sees input rows i - reach .. i (.. i - 1 for type A): pad above only.
        v_out = F.conv2d(
            F.pad(v, (reach, reach, reach, 0)),
            self.vertical.weight * self.vertical_mask,
            self.vertical.bias,
        )
        # Output column j sees input columns j - reach .. j (.. j - 1 for type A): pad left only.
        h_out = F.conv2d(
            F.pad(h, (reach, 0, 0, 0)),
            self.horizontal.weight * self.horizontal_mask,
            self.horizontal.bias,
        )
        h_out = h_out + self.vertical_to_horizontal(v_out)
        h_next = self.residual(_gate(h_out))
        if not self.first:
            h_next = h_next + h
        return _gate(v_out), h_next


class PixelCNN(nn.Module):
    """codes int64 [N,h,w] -> logits [N,K,h,w] of each position given the ones before it."""

    def __init__(
        self, num_codes: int, channels: int = 64, layers: int = 6, kernel: int = 3
    ) -> None:
        super().__init__()
        self.num_codes = num_codes
        self.embed = nn.Embedding(num_codes, channels)
        self.layers = nn.ModuleList(
            [GatedLayer(channels, kernel, first=index == 0) for index in range(layers)]
        )
        self.head = nn.Sequential(
            nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, num_codes, 1)
        )

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        x = self.embed(codes).permute(0, 3, 1, 2)
        v, h = x, x
        for layer in self.layers:
            v, h = layer(v, h)
        out: torch.Tensor = self.head(h)
        return out

    def nll(self, codes: torch.Tensor) -> torch.Tensor:
        """-log p(codes) in nats, one value per grid [N]."""
        per_position = F.cross_entropy(self(codes), codes, reduction="none")
        return per_position.flatten(1).sum(dim=1)
