"""Latent-space arithmetic: linear and spherical interpolation, and prior sampling."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray

from app.arrays import FloatArray

Method = Literal["lerp", "slerp"]


def lerp(start: FloatArray, end: FloatArray, alphas: NDArray[np.floating]) -> FloatArray:
    """z(a) = (1 - a) z1 + a z2 for every a: [len(alphas), D]."""
    a = np.asarray(alphas, dtype=np.float64)[:, None]
    path = (1.0 - a) * start[None].astype(np.float64) + a * end[None].astype(np.float64)
    return path.astype(np.float32)


def slerp(start: FloatArray, end: FloatArray, alphas: NDArray[np.floating]) -> FloatArray:
    """Spherical interpolation (Shoemake): follows the arc between z1 and z2, so the path keeps
    to the shell where a high-dimensional Gaussian's mass lies instead of cutting through the
    low-density centre as lerp does.

    Falls back to lerp when the two directions are (anti)parallel or either is zero.
    """
    a = np.asarray(alphas, dtype=np.float64)[:, None]
    z1, z2 = start.astype(np.float64), end.astype(np.float64)
    n1, n2 = np.linalg.norm(z1), np.linalg.norm(z2)
    if n1 < 1e-12 or n2 < 1e-12:
        return lerp(start, end, alphas)
    cos = float(np.clip(np.dot(z1 / n1, z2 / n2), -1.0, 1.0))
    omega = np.arccos(cos)
    if np.sin(omega) < 1e-6:
        return lerp(start, end, alphas)
    weights1 = np.sin((1.0 - a) * omega) / np.sin(omega)
    weights2 = np.sin(a * omega) / np.sin(omega)
    return (weights1 * z1[None] + weights2 * z2[None]).astype(np.float32)


def interpolate(start: FloatArray, end: FloatArray, steps: int, method: Method) -> FloatArray:
    """`steps` evenly spaced points from start to end, both included."""
    alphas = np.linspace(0.0, 1.0, steps)
    return slerp(start, end, alphas) if method == "slerp" else lerp(start, end, alphas)


def sample_prior(
    n: int, latent_dim: int, temperature: float, seed: int | None
) -> tuple[FloatArray, int]:
    """n draws from N(0, temperature^2 I) and the seed that reproduces them."""
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, latent_dim), dtype=np.float32) * np.float32(temperature)
    return z, seed
