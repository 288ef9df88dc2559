"""Held-out evaluation of a VQ-VAE from its ONNX graphs alone (encoder, decoder, prior) and its
codebook.

The encoder is deterministic: q(c|x) puts all its mass on the codes c(x) of the nearest codebook
vectors, so its entropy is 0 and KL(q || p) = -log p(c(x)) under the learned prior. Hence
    ELBO = log p(x | z_q(x)) + log p_prior(c(x))  <=  log p(x),
a true lower bound, reported as `elbo` with `kl` = the prior's NLL of the codes (the rate).
The IWAE bound is not estimated (`iwae_nll` null): with a point-mass q every importance weight
is the same and the bound equals the ELBO for every k. Active units and the KL per dimension are
Gaussian-latent notions and are null too; codebook usage and perplexity take their place.
The VQ training loss (reconstruction + commitment_cost * commitment) is reported beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from app.arrays import CodeArray, FloatArray
from app.evaluation.gaussian import OnnxVAE
from app.repository.manifest import VQMetrics
from app.runtime.sessions import GraphSession, load_graph
from app.serving.vq import CODEBOOK_FILE, PRIOR_FILE, codes_to_latents, sample_codes_blocking


@dataclass
class OnnxVQVAE(OnnxVAE):
    """A VQ-VAE version's graphs: encoder (z_e, codes), decoder, prior, and the codebook."""

    prior: GraphSession | None = None
    codebook: FloatArray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    grid: tuple[int, int] = (0, 0)

    @classmethod
    def load(cls, directory: Path, likelihood: str, threads: int | None = None) -> OnnxVQVAE:
        """Loads the three graphs and codebook.npy from a version (or staging) directory."""
        codebook = np.load(directory / CODEBOOK_FILE).astype(np.float32)
        model = cls(
            load_graph(directory / "encoder.onnx", threads),
            load_graph(directory / "decoder.onnx", threads),
            likelihood,
            load_graph(directory / PRIOR_FILE, threads),
            codebook,
        )
        shape = model.encoder.session.get_inputs()[0].shape
        probe = np.zeros((1, *shape[1:]), np.float32)
        codes = model.encoder.run(probe)["codes"]
        model.grid = (int(codes.shape[1]), int(codes.shape[2]))
        return model

    def encode_grid(self, x: FloatArray, batch: int = 1024) -> tuple[FloatArray, CodeArray]:
        """Images -> z_e [N,D,h,w] and codes [N,h,w]."""
        parts = [self.encoder.run(x[i : i + batch]) for i in range(0, len(x), batch)]
        return (
            np.concatenate([p["z_e"] for p in parts]),
            np.concatenate([p["codes"] for p in parts]).astype(np.int64),
        )

    def encode(
        self, x: FloatArray, y: np.ndarray | None = None, batch: int = 1024
    ) -> tuple[FloatArray, FloatArray]:
        """The flattened z_e [N, D*h*w] as the latent, with a log-variance of -inf (the
        encoder is deterministic)."""
        z_e, _ = self.encode_grid(x, batch)
        flat = z_e.reshape(len(z_e), -1)
        return flat, np.full_like(flat, -np.inf)

    def latents(self, codes: CodeArray) -> FloatArray:
        """Code grids -> decoder inputs [N, D*h*w]."""
        return codes_to_latents(self.codebook, codes)

    def _prior(self, rows: FloatArray) -> dict[str, FloatArray]:
        assert self.prior is not None
        return self.prior.run_feeds({"codes": np.rint(rows).astype(np.int64)})

    def prior_nll(self, codes: CodeArray, batch: int = 1024) -> NDArray[np.float64]:
        """-log p(codes) under the prior, nats per grid [N]."""
        out = []
        for start in range(0, len(codes), batch):
            part = codes[start : start + batch]
            logits = self._prior(part.astype(np.float32))["logits"].astype(np.float64)
            top = logits.max(axis=1, keepdims=True)
            log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
            picked = np.take_along_axis(logits, part[:, None], axis=1)[:, 0]
            out.append((log_norm - picked).reshape(len(part), -1).sum(axis=1))
        return np.concatenate(out)

    def sample_codes(self, n: int, seed: int, temperature: float = 1.0) -> CodeArray:
        """n code grids drawn from the prior."""
        rng = np.random.default_rng(seed)
        return sample_codes_blocking(self._prior, n, self.grid, temperature, rng)

    def sample(self, n: int, seed: int, temperature: float = 1.0, batch: int = 512) -> FloatArray:
        """n images decoded from prior draws."""
        codes = np.concatenate(
            [
                self.sample_codes(min(batch, n - start), seed + start, temperature)
                for start in range(0, n, batch)
            ]
        )
        return self.decode(self.latents(codes))


def evaluate_vq(model: OnnxVQVAE, x: FloatArray, commitment_cost: float) -> VQMetrics:
    """All held-out metrics for images x (already binarized for a Bernoulli model)."""
    z_e, codes = model.encode_grid(x)
    z_q = model.latents(codes)
    flat = z_e.reshape(len(z_e), -1).astype(np.float64)
    commitment = ((flat - z_q) ** 2).sum(axis=1)
    reconstruction = -model.log_px_given_z(x, z_q)
    prior = model.prior_nll(codes)
    size = len(model.codebook)
    counts = np.bincount(codes.ravel(), minlength=size).astype(np.float64)
    share = counts / counts.sum()
    used = share[share > 0]
    recon = float(reconstruction.mean())
    prior_nll = float(prior.mean())
    return VQMetrics(
        elbo=-(recon + prior_nll),
        iwae_nll=None,
        k=None,
        eval_images=len(x),
        active_units=None,
        kl=prior_nll,
        reconstruction_nll=recon,
        kl_per_dim=None,
        prior_nll=prior_nll,
        uniform_prior_nll=float(codes[0].size * math.log(size)),
        commitment=float(commitment.mean()),
        vq_loss=recon + commitment_cost * float(commitment.mean()),
        codes_used=int((counts > 0).sum()),
        codebook_usage=float((counts > 0).mean()),
        perplexity=float(np.exp(-(used * np.log(used)).sum())),
    )
