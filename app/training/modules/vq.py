"""The vector quantizer of a VQ-VAE (van den Oord et al. 2017): nearest-code lookup, a
straight-through gradient, a codebook learned by exponential moving averages of the encoder
outputs assigned to each code, and dead-code restarts.

The codebook gets no gradient: EMA k-means updates replace the paper's codebook loss term, so
the loss holds only the reconstruction and the commitment term. A code that no encoder output
has chosen for `patience` batches is dead: it is re-seeded from a random encoder output of the
batch, so the whole codebook stays in use. (An EMA usage threshold reacts too slowly: early in
training the encoder's outputs move faster than the usage of the codes they leave decays, and
all of them fall to the one code that follows them.) The output is drawn with probability in
proportion to its squared distance from its code (as k-means++ seeds): uniform draws land
mostly on the commonest vectors (an empty background), which a code already serves.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class VectorQuantizer(nn.Module):
    """z_e [N,D,h,w] -> (quantized [N,D,h,w] with straight-through gradient, codes [N,h,w],
    the commitment ||z_e - sg(q)||^2 per image [N]).

    In training mode every call also updates the codebook (EMA) and restarts dead codes."""

    def __init__(
        self,
        num_embeddings: int,
        dim: int,
        decay: float = 0.99,
        patience: int = 1,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.num_embeddings = num_embeddings
        self.dim = dim
        self.decay = decay
        self.patience = patience
        self.eps = eps
        codebook = torch.randn(num_embeddings, dim)
        self.register_buffer("codebook", codebook)
        self.register_buffer("cluster_size", torch.ones(num_embeddings))
        self.register_buffer("embed_sum", codebook.clone())
        self.register_buffer("idle", torch.zeros(num_embeddings, dtype=torch.int64))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.codebook: torch.Tensor
        self.cluster_size: torch.Tensor
        self.embed_sum: torch.Tensor
        self.idle: torch.Tensor
        self.initialized: torch.Tensor

    def nearest(self, flat: torch.Tensor) -> torch.Tensor:
        """Index of the closest code (squared Euclidean distance) for each row of flat [M,D]."""
        distances = (
            flat.pow(2).sum(dim=1, keepdim=True)
            - 2.0 * flat @ self.codebook.t()
            + self.codebook.pow(2).sum(dim=1)[None]
        )
        return distances.argmin(dim=1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Code indices [N,h,w] -> their vectors [N,D,h,w]."""
        return F.embedding(codes, self.codebook).permute(0, 3, 1, 2)

    def quantize(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z_e [N,D,h,w] -> (codes [N,h,w], the nearest code vectors [N,D,h,w]); no update."""
        n, d, h, w = z_e.shape
        flat = z_e.permute(0, 2, 3, 1).reshape(-1, d)
        codes = self.nearest(flat).view(n, h, w)
        return codes, self.lookup(codes)

    def forward(self, z_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.training:
            self._initialize(z_e)
        codes, q = self.quantize(z_e)
        if self.training:
            self.update(z_e.detach().permute(0, 2, 3, 1).reshape(-1, self.dim), codes.flatten())
        commitment = (z_e - q.detach()).pow(2).flatten(1).sum(dim=1)
        # Straight-through: the decoder's gradient with respect to q passes unchanged to z_e.
        quantized = z_e + (q - z_e).detach()
        return quantized, codes, commitment

    @torch.no_grad()
    def _initialize(self, z_e: torch.Tensor) -> None:
        """Seeds the codebook from the first training batch's encoder outputs (a code drawn
        from the data starts close to where the data is)."""
        if bool(self.initialized):
            return
        flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, self.dim)
        rows = torch.randint(len(flat), (self.num_embeddings,), device=flat.device)
        self.codebook.copy_(flat[rows])
        self.embed_sum.copy_(flat[rows])
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def update(self, flat: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """One EMA step of the codebook towards the mean of the vectors assigned to each code,
        then dead-code restarts. Returns the restarted codes' indices."""
        errors = (flat - self.codebook[codes]).pow(2).sum(dim=1)
        counts = torch.bincount(codes, minlength=self.num_embeddings).to(flat.dtype)
        sums = torch.zeros_like(self.embed_sum).index_add_(0, codes, flat)
        self.idle.add_(1).masked_fill_(counts > 0, 0)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1.0 - self.decay)
        self.embed_sum.mul_(self.decay).add_(sums, alpha=1.0 - self.decay)
        # Laplace smoothing keeps a barely used code's divisor away from zero.
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (total + self.num_embeddings * self.eps) * total
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        return self.restart_dead(flat, errors)

    @torch.no_grad()
    def restart_dead(self, flat: torch.Tensor, errors: torch.Tensor | None = None) -> torch.Tensor:
        """Re-seeds every code idle for `patience` batches from random rows of flat, drawn in
        proportion to `errors` (their squared distance to their code) when given."""
        dead = torch.nonzero(self.idle >= self.patience).flatten()
        if len(dead) == 0 or len(flat) == 0:
            return dead
        if errors is not None and float(errors.sum()) > 0:
            rows = torch.multinomial(errors, len(dead), replacement=True)
        else:
            rows = torch.randint(len(flat), (len(dead),), device=flat.device)
        self.codebook[dead] = flat[rows]
        self.embed_sum[dead] = flat[rows]
        self.cluster_size[dead] = 1.0
        self.idle[dead] = 0
        return dead
