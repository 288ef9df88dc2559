"""The quality gates' measures: PSNR, the check images, and the IWAE bound computed from graph
outputs, checked against a model whose log-likelihood is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.serving import quality


def test_psnr_of_a_known_error_identical_images_and_non_finite_ones() -> None:
    reference = np.zeros((2, 3, 8, 8), np.float32)
    assert quality.psnr(reference, reference + 0.01) == pytest.approx(40.0)
    assert quality.psnr(reference, reference + 0.1) == pytest.approx(20.0)
    assert quality.psnr(reference, reference) == quality.PSNR_IDENTICAL_DB
    assert quality.psnr(reference * 2 - 1, reference * 2 - 1 + 0.02, peak=2.0) == pytest.approx(40)
    broken = reference.copy()
    broken[0, 0, 0, 0] = np.nan
    assert quality.psnr(reference, broken) == 0.0


def test_check_images_are_seeded_pictures_in_range_with_edges() -> None:
    images = quality.check_images(3, 3, 40, 48)
    assert images.shape == (3, 3, 40, 48) and images.dtype == np.float32
    assert np.array_equal(images, quality.check_images(3, 3, 40, 48))
    assert not np.array_equal(images, quality.check_images(3, 3, 40, 48, seed=1))
    assert images.min() >= 0.0 and images.max() <= 1.0
    steps = np.abs(np.diff(images, axis=3))
    assert steps.max() > 0.2  # sharp edges
    assert np.median(steps) < 0.05  # and smooth gradients between them
    assert not np.array_equal(images[0], images[1])


def _linear_gaussian(weights: np.ndarray, scale: float) -> quality.FlatModel:
    """x = W z + noise, z ~ N(0, I), noise ~ N(0, scale^2 I); the encoder is the exact posterior,
    so every importance weight is p(x) and the IWAE bound is log p(x) for any k."""
    d = weights.shape[1]
    precision = np.eye(d) + weights.T @ weights / scale**2
    covariance = np.linalg.inv(precision)

    def encode(x: np.ndarray, labels: object) -> dict[str, np.ndarray]:
        flat = x.reshape(len(x), -1).astype(np.float64)
        mu = flat @ weights @ covariance.T / scale**2
        logvar = np.log(np.tile(np.diag(covariance), (len(x), 1)))
        return {"mu": mu.astype(np.float32), "logvar": logvar.astype(np.float32)}

    def decode(z: np.ndarray, labels: object) -> dict[str, np.ndarray]:
        mean = z.astype(np.float64) @ weights.T
        return {"x_mean": mean, "x_logscale": np.full_like(mean, math.log(scale))}

    return quality.FlatModel(encode, decode, "gaussian")


def test_the_iwae_bound_of_an_exact_posterior_is_the_log_likelihood() -> None:
    rng = np.random.default_rng(0)
    weights, scale = rng.normal(size=(6, 1)), 0.5  # one latent: a diagonal posterior is exact
    x = rng.normal(size=(10, 6)).astype(np.float32)
    marginal = weights @ weights.T + scale**2 * np.eye(6)
    _, logdet = np.linalg.slogdet(marginal)
    solved = np.linalg.solve(marginal, x.T.astype(np.float64))
    exact = -0.5 * (np.sum(x.T * solved, axis=0) + logdet + 6 * math.log(2 * math.pi))
    bound = quality.iwae_bound(_linear_gaussian(weights, scale), x, k=4)
    assert bound == pytest.approx(float(exact.mean()), abs=1e-4)


def test_the_bound_moves_when_a_decoder_rounds_and_not_when_it_does_not() -> None:
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(6, 1))
    model = _linear_gaussian(weights, 0.01)
    x = (rng.normal(size=(8, 1)) @ weights.T).astype(np.float32)
    rounded = quality.FlatModel(
        model.encode,
        lambda z, y: {k: np.round(v, 2) for k, v in model.decode(z, y).items()},
        "gaussian",
    )
    same = quality.iwae_bound(model, x) - quality.iwae_bound(model, x)
    moved = abs(quality.iwae_bound(rounded, x) - quality.iwae_bound(model, x))
    assert same == 0.0 and moved > quality.IWAE_NATS


def test_the_bernoulli_likelihood_is_the_negative_cross_entropy() -> None:
    x = np.array([[1.0, 0.0, 0.25]], np.float32)
    logits = np.array([[2.0, -1.0, 0.5]], np.float32)
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p))
    got = quality.log_likelihood("bernoulli", x, {"logits": logits})
    assert got[0] == pytest.approx(expected)
