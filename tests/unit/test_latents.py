"""Interpolation and prior sampling, with the tutorial's lerp table."""

from __future__ import annotations

import numpy as np
import pytest

from app.serving.latents import interpolate, lerp, sample_prior, slerp

Z1 = np.array([1.2, -0.5], dtype=np.float32)
Z2 = np.array([-0.8, 1.1], dtype=np.float32)


def test_lerp_reproduces_the_tutorial_table() -> None:
    path = lerp(Z1, Z2, np.array([0.0, 0.25, 0.5, 0.75, 1.0]))
    expected = [[1.2, -0.5], [0.7, -0.1], [0.2, 0.3], [-0.3, 0.7], [-0.8, 1.1]]
    np.testing.assert_allclose(path, expected, atol=1e-6)


def test_interpolate_includes_both_ends() -> None:
    for method in ("lerp", "slerp"):
        path = interpolate(Z1, Z2, 5, method)  # type: ignore[arg-type]
        assert path.shape == (5, 2)
        np.testing.assert_allclose(path[0], Z1, atol=1e-6)
        np.testing.assert_allclose(path[-1], Z2, atol=1e-6)


def test_slerp_keeps_the_norm_of_equal_norm_endpoints() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(32).astype(np.float32)
    b = rng.standard_normal(32).astype(np.float32)
    b *= np.linalg.norm(a) / np.linalg.norm(b)
    norms = np.linalg.norm(slerp(a, b, np.linspace(0, 1, 9)), axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(a), rtol=1e-5)
    # lerp cuts through the low-density centre instead
    assert np.linalg.norm(lerp(a, b, np.array([0.5]))) < 0.9 * np.linalg.norm(a)


def test_slerp_falls_back_to_lerp_for_parallel_or_zero_vectors() -> None:
    a = np.array([1.0, 0.0], dtype=np.float32)
    np.testing.assert_allclose(slerp(a, 2 * a, np.array([0.5])), [[1.5, 0.0]], atol=1e-6)
    np.testing.assert_allclose(slerp(np.zeros(2, np.float32), a, np.array([0.5])), [[0.5, 0.0]])


def test_sampling_is_reproducible_and_scaled_by_temperature() -> None:
    z1, seed = sample_prior(4, 8, 1.0, 42)
    z2, _ = sample_prior(4, 8, 1.0, 42)
    assert seed == 42
    np.testing.assert_array_equal(z1, z2)
    half, _ = sample_prior(4, 8, 0.5, 42)
    np.testing.assert_allclose(half, 0.5 * z1, rtol=1e-6)
    zero, _ = sample_prior(4, 8, 0.0, 42)
    assert not zero.any()


def test_unseeded_sampling_reports_a_seed_that_reproduces_it() -> None:
    z, seed = sample_prior(3, 4, 1.0, None)
    again, _ = sample_prior(3, 4, 1.0, seed)
    np.testing.assert_array_equal(z, again)


@pytest.mark.parametrize("steps", [2, 3, 17])
def test_interpolation_has_the_asked_number_of_steps(steps: int) -> None:
    assert len(interpolate(Z1, Z2, steps, "slerp")) == steps
