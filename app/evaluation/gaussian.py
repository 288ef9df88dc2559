"""Held-out evaluation from the two ONNX graphs alone: ELBO, IWAE bound, active units, KL per dim.

Torch-free on purpose: anyone holding a version's graphs can reproduce its manifest's metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from app.arrays import FloatArray
from app.runtime.sessions import GraphSession, load_graph

LOG_2PI = math.log(2 * math.pi)
ACTIVE_UNIT_THRESHOLD = 0.01
# Rows per decoder call while estimating the IWAE bound (K samples x images).
DECODE_ROWS = 32768


@dataclass
class OnnxVAE:
    """A model version's encoder and decoder graphs."""

    encoder: GraphSession
    decoder: GraphSession
    likelihood: str

    @classmethod
    def load(cls, directory: Path, likelihood: str, threads: int | None = None) -> OnnxVAE:
        """Loads encoder.onnx and decoder.onnx from a version directory (or a staging one)."""
        return cls(
            load_graph(directory / "encoder.onnx", threads),
            load_graph(directory / "decoder.onnx", threads),
            likelihood,
        )

    @staticmethod
    def _run(graph: GraphSession, first: np.ndarray, y: np.ndarray | None) -> dict[str, FloatArray]:
        feeds = {graph.input_name: first}
        if y is not None:
            feeds["y"] = y.astype(np.int64)
        return graph.run_feeds(feeds)

    def with_noise(self, z: FloatArray) -> FloatArray:
        """Pads latents with zeros for a decoder that also takes noise (a ladder VAE's eps1:
        zero noise decodes the mean of the lower layer)."""
        width = self.decoder.input_width
        if width is None or z.shape[1] >= width:
            return z
        return np.concatenate([z, np.zeros((len(z), width - z.shape[1]), np.float32)], axis=1)

    def encode(
        self, x: FloatArray, y: np.ndarray | None = None, batch: int = 1024
    ) -> tuple[FloatArray, FloatArray]:
        """x [N,C,H,W] (+ class indices) -> (mu, logvar) [N,D], in batches."""
        parts = [
            self._run(self.encoder, x[i : i + batch], None if y is None else y[i : i + batch])
            for i in range(0, len(x), batch)
        ]
        return (
            np.concatenate([p["mu"] for p in parts]),
            np.concatenate([p["logvar"] for p in parts]),
        )

    def decode(self, z: FloatArray, y: np.ndarray | None = None, batch: int = 4096) -> FloatArray:
        """z [N,D] (+ class indices) -> x_mean [N,C,H,W]."""
        z = self.with_noise(z)
        return np.concatenate(
            [
                self._run(self.decoder, z[i : i + batch], None if y is None else y[i : i + batch])[
                    "x_mean"
                ]
                for i in range(0, len(z), batch)
            ]
        )

    def log_px_given_z(
        self, x: FloatArray, z: FloatArray, y: np.ndarray | None = None
    ) -> NDArray[np.float64]:
        """log p(x|z) for rows of z, each paired with the row of x at the same index."""
        out = self._run(self.decoder, self.with_noise(z), y)
        flat_x = x.reshape(len(x), -1)
        if self.likelihood == "bernoulli":
            logits = out["logits"].reshape(len(z), -1)
            # log Bernoulli(x; sigmoid(l)) = -softplus(-(2x - 1) l)
            per_pixel = -np.logaddexp(np.float32(0.0), (1.0 - 2.0 * flat_x) * logits)
        else:
            mean = out["x_mean"].reshape(len(z), -1)
            logscale = out["x_logscale"].reshape(len(z), -1)
            per_pixel = -0.5 * ((flat_x - mean) * np.exp(-logscale)) ** 2 - logscale - 0.5 * LOG_2PI
        return per_pixel.sum(axis=1, dtype=np.float64)


@dataclass(frozen=True)
class Evaluation:
    """Held-out metrics in nats per image (NLLs are positive: lower is better)."""

    elbo: float
    iwae_nll: float
    k: int
    eval_images: int
    active_units: int
    kl: float
    reconstruction_nll: float
    kl_per_dim: list[float]
    active_units_per_layer: list[int] | None = None  # top layer first (hvae); None for one layer


def diagonal_log_prob(
    z: NDArray[np.float64], mu: NDArray[np.float64], logvar: NDArray[np.float64]
) -> NDArray[np.float64]:
    """log N(z; mu, diag(exp(logvar))) over the last axis."""
    return np.sum(-0.5 * ((z - mu) ** 2 * np.exp(-logvar) + logvar + LOG_2PI), axis=-1)


def iwae_log_likelihood(
    model: OnnxVAE, x: FloatArray, k: int, rng: np.random.Generator, y: np.ndarray | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Per image: the IWAE bound with k samples, and the ELBO estimated from the same samples."""
    mu, logvar = (a.astype(np.float64) for a in model.encode(x, y))
    images_per_call = max(1, DECODE_ROWS // k)
    iwae = np.empty(len(x))
    elbo = np.empty(len(x))
    for start in range(0, len(x), images_per_call):
        stop = min(start + images_per_call, len(x))
        m, lv = mu[start:stop], logvar[start:stop]
        z = m[None] + np.exp(0.5 * lv)[None] * rng.standard_normal((k, *m.shape))  # [K, n, D]
        log_q = diagonal_log_prob(z, m[None], lv[None])
        log_p = np.sum(-0.5 * (z**2 + LOG_2PI), axis=-1)
        xs = np.broadcast_to(x[start:stop][None], (k, *x[start:stop].shape)).reshape(
            -1, *x.shape[1:]
        )
        ys = None if y is None else np.tile(y[start:stop], k)
        log_px = model.log_px_given_z(
            xs, z.reshape(-1, z.shape[-1]).astype(np.float32), ys
        ).reshape(k, -1)
        log_w = log_px + log_p - log_q
        top = log_w.max(axis=0)
        iwae[start:stop] = top + np.log(np.mean(np.exp(log_w - top), axis=0))
        elbo[start:stop] = log_w.mean(axis=0)
    return iwae, elbo


def evaluate(
    model: OnnxVAE, x: FloatArray, k: int, seed: int = 0, y: np.ndarray | None = None
) -> Evaluation:
    """All held-out metrics for images x (already binarized for a Bernoulli model), with class
    indices y for a conditional model."""
    rng = np.random.default_rng(seed)
    mu, logvar = (a.astype(np.float64) for a in model.encode(x, y))
    kl_per_dim = 0.5 * (mu**2 + np.exp(logvar) - logvar - 1.0)
    # The reconstruction term of the ELBO, from one z ~ q(z|x) per image.
    z = (mu + np.exp(0.5 * logvar) * rng.standard_normal(mu.shape)).astype(np.float32)
    reconstruction = -model.log_px_given_z(x, z, y)
    iwae, elbo = iwae_log_likelihood(model, x, k, rng, y)
    return Evaluation(
        elbo=float(elbo.mean()),
        iwae_nll=float(-iwae.mean()),
        k=k,
        eval_images=len(x),
        active_units=active_units(mu),
        kl=float(kl_per_dim.sum(axis=1).mean()),
        reconstruction_nll=float(reconstruction.mean()),
        kl_per_dim=[round(float(v), 5) for v in kl_per_dim.mean(axis=0)],
    )


def active_units(mu: NDArray[np.floating]) -> int:
    """Dimensions whose posterior mean varies across the data: Cov_x(E_q[z]) > 0.01 (Burda et al.)."""
    return int((np.var(mu, axis=0) > ACTIVE_UNIT_THRESHOLD).sum())
