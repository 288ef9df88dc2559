"""Held-out evaluation of models whose bound needs more than the two serving graphs (the ladder
VAE's log-weights involve p(z1|z2) and q(z1|z2,x)): computed with the PyTorch model instead."""

from __future__ import annotations

import numpy as np
import torch

from app.evaluation.gaussian import Evaluation, active_units
from app.training.losses import iwae_bound
from app.training.modules import GaussianVAE


@torch.no_grad()
def evaluate_torch(
    model: GaussianVAE,
    x: np.ndarray,
    k: int,
    seed: int = 0,
    chunk: int = 64,
) -> Evaluation:
    """ELBO, IWAE NLL (k samples), KL per dimension and active units on images x."""
    torch.manual_seed(seed)
    model.eval()
    data = torch.from_numpy(x)
    iwae, elbo, recon, kl_dims, means = [], [], [], [], []
    for start in range(0, len(data), chunk):
        batch = data[start : start + chunk]
        log_w = model.log_weights(batch, k).double()
        iwae.append(iwae_bound(log_w))
        elbo.append(log_w.mean(dim=0))
        log_px, kl = model.objective(batch)
        recon.append(-log_px)
        kl_dims.append(kl)
        means.append(model.graph_encode(batch)[0::2])  # each layer's posterior mean
    per_dim = torch.cat(kl_dims).mean(dim=0)
    per_layer = [active_units(torch.cat(layer).numpy()) for layer in zip(*means, strict=True)]
    return Evaluation(
        elbo=float(torch.cat(elbo).mean()),
        iwae_nll=float(-torch.cat(iwae).mean()),
        k=k,
        eval_images=len(x),
        active_units=per_layer[0],
        kl=float(per_dim.sum()),
        reconstruction_nll=float(torch.cat(recon).mean()),
        kl_per_dim=[round(float(v), 5) for v in per_dim],
        active_units_per_layer=per_layer if len(per_layer) > 1 else None,
    )
