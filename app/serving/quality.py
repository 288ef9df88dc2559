"""The quality gates a lower precision passes against fp32 before it serves a version, and the
check inputs they run on (deterministic and seeded: every load of a version checks the same).

- Images (spatial models, and a VQ-VAE's decoder): PSNR of the candidate's images against
  fp32's, at least `PSNR_DB`.
- Flat Gaussian models (vae, cvae, hvae): the IWAE bound, k importance samples per check image,
  moves by at most `IWAE_NATS` between the candidate and fp32 (the same draws for both, so what
  moves is the graphs, not the Monte Carlo noise).

Plain numpy over graph outputs: the graphs are whatever engine runs them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from app.arrays import FloatArray

PSNR_DB = 40.0
IWAE_NATS = 0.1
IWAE_K = 16
CHECK_ROWS = 64
SEED = 24
LOG_2PI = math.log(2 * math.pi)
# PSNR of identical images: a finite number, so it stays a number in JSON.
PSNR_IDENTICAL_DB = 200.0

Outputs = dict[str, FloatArray]
Float64Array = NDArray[np.float64]


def psnr(reference: FloatArray, candidate: FloatArray, peak: float = 1.0) -> float:
    """PSNR in dB of `candidate` against `reference` (values spanning `peak`); 200 dB when
    they are equal, 0 when the candidate is not finite."""
    if not np.isfinite(candidate).all():
        return 0.0
    error = np.asarray(reference, np.float64) - np.asarray(candidate, np.float64)
    mse = float(np.mean(error**2))
    if mse == 0.0:
        return PSNR_IDENTICAL_DB
    return min(PSNR_IDENTICAL_DB, 10.0 * math.log10(peak**2 / mse))


def check_images(
    count: int, channels: int, height: int, width: int, seed: int = SEED
) -> FloatArray:
    """`count` images [N,C,H,W] in [0,1] that look like pictures to an autoencoder: a smooth
    gradient in a random direction per channel, with a few flat rectangles and discs whose sharp
    edges cross it. The same images for the same arguments."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ys, xs = ys / max(1, height - 1), xs / max(1, width - 1)
    images = np.empty((count, channels, height, width), np.float32)
    for i in range(count):
        angle = rng.uniform(0, 2 * np.pi, channels)[:, None, None]
        low, high = rng.uniform(0.0, 0.5, (channels, 1, 1)), rng.uniform(0.5, 1.0, (channels, 1, 1))
        ramp = (np.cos(angle) * xs + np.sin(angle) * ys + 1.0) / 2.0
        image = low + (high - low) * ramp
        for _ in range(3):
            shape = _shape_mask(rng, ys, xs)
            image = np.where(shape, rng.uniform(0.0, 1.0, (channels, 1, 1)), image)
        images[i] = np.clip(image, 0.0, 1.0)
    return images


def _shape_mask(rng: np.random.Generator, ys: FloatArray, xs: FloatArray) -> NDArray[np.bool_]:
    cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.08, 0.25)
    if rng.random() < 0.5:
        return np.asarray((ys - cy) ** 2 + (xs - cx) ** 2 < r**2)
    return np.asarray((np.abs(ys - cy) < r) & (np.abs(xs - cx) < r * 1.5))


def prior_draws(rows: int, width: int, seed: int = SEED) -> FloatArray:
    """Seeded standard normal latents [rows, width]: what the prior gives."""
    return np.random.default_rng(seed).standard_normal((rows, width), dtype=np.float32)


@dataclass(frozen=True)
class FlatModel:
    """A flat Gaussian model as the IWAE bound needs it: `encode(images, labels)` gives the
    encoder's outputs (mu, logvar), `decode(z, labels)` the decoder's (logits for a Bernoulli
    likelihood, x_mean and x_logscale for a Gaussian one)."""

    encode: Callable[[FloatArray, NDArray[np.int64] | None], Outputs]
    decode: Callable[[FloatArray, NDArray[np.int64] | None], Outputs]
    likelihood: str


def log_likelihood(likelihood: str, x: FloatArray, outputs: Outputs) -> Float64Array:
    """log p(x|z) per row, from the decoder's outputs for those rows."""
    flat_x = x.reshape(len(x), -1).astype(np.float64)
    if likelihood == "bernoulli":
        logits = outputs["logits"].reshape(len(x), -1).astype(np.float64)
        # x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)): check images are grey, not binary
        per_pixel = flat_x * logits - np.logaddexp(0.0, logits)
    else:
        mean = outputs["x_mean"].reshape(len(x), -1).astype(np.float64)
        logscale = outputs["x_logscale"].reshape(len(x), -1).astype(np.float64)
        per_pixel = -0.5 * ((flat_x - mean) * np.exp(-logscale)) ** 2 - logscale - 0.5 * LOG_2PI
    return np.asarray(per_pixel.sum(axis=1), np.float64)


def iwae_bound(
    model: FlatModel,
    x: FloatArray,
    labels: NDArray[np.int64] | None = None,
    k: int = IWAE_K,
    seed: int = SEED,
) -> float:
    """The IWAE bound log p(x) >= E log mean_k p(x, z_k) / q(z_k|x), in nats, averaged over the
    images x (of class `labels`); the posterior draws come from `seed`."""
    out = model.encode(x, labels)
    mu, logvar = out["mu"].astype(np.float64), out["logvar"].astype(np.float64)
    eps = np.random.default_rng(seed).standard_normal((k, *mu.shape))
    z = mu[None] + np.exp(0.5 * logvar)[None] * eps  # [K, N, D]
    log_q = np.sum(-0.5 * (eps**2 + logvar[None] + LOG_2PI), axis=-1)
    log_p = np.sum(-0.5 * (z**2 + LOG_2PI), axis=-1)
    log_px = np.empty((k, len(x)))
    for j in range(k):
        decoded = model.decode(z[j].astype(np.float32), labels)
        log_px[j] = log_likelihood(model.likelihood, x, decoded)
    log_w = log_px + log_p - log_q
    top = log_w.max(axis=0)
    bound = top + np.log(np.mean(np.exp(log_w - top), axis=0))
    return float(np.mean(bound))
