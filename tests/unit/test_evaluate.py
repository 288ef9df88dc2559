"""Held-out evaluation from the shipped model's two ONNX graphs alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.datasets.arrays import binarize
from app.evaluation.gaussian import OnnxVAE, evaluate, iwae_log_likelihood
from app.repository.store import ModelRepository
from tests.support.paths import SHIPPED_MODELS


@pytest.fixture(scope="module")
def shipped() -> OnnxVAE:
    repository = ModelRepository(SHIPPED_MODELS)
    version = repository.default_version("mnist")
    assert version is not None, "the shipped model is missing from models/"
    return OnnxVAE.load(repository.version_dir("mnist", version), "bernoulli")


@pytest.fixture(scope="module")
def digits(heldout_digits: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    images, _ = heldout_digits
    x = (images[:64] / 255.0).astype(np.float32)[:, None]
    return binarize(x, np.random.default_rng(1))


def test_iwae_is_above_the_elbo_and_rises_with_k(shipped: OnnxVAE, digits: np.ndarray) -> None:
    bounds = {}
    for k in (1, 10, 100, 1000):
        iwae, elbo = iwae_log_likelihood(shipped, digits, k, np.random.default_rng(0))
        bounds[k] = float(iwae.mean())
        assert bounds[k] >= float(elbo.mean()) - 1e-9
    assert bounds[1] < bounds[10] < bounds[100] < bounds[1000]


def test_evaluation_reports_every_metric(shipped: OnnxVAE, digits: np.ndarray) -> None:
    result = evaluate(shipped, digits, k=50)
    assert result.eval_images == 64 and result.k == 50
    assert 0 < result.iwae_nll < -result.elbo
    assert result.kl == pytest.approx(sum(result.kl_per_dim), rel=1e-3)
    assert 1 <= result.active_units <= len(result.kl_per_dim)
    assert result.reconstruction_nll > 0


def test_the_shipped_manifest_meets_the_nll_target() -> None:
    repository = ModelRepository(SHIPPED_MODELS)
    version = repository.default_version("mnist")
    assert version is not None
    manifest = json.loads((repository.version_dir("mnist", version) / "manifest.json").read_text())
    metrics = manifest["metrics"]
    assert metrics["k"] >= 1000 and metrics["eval_images"] >= 10000
    assert metrics["iwae_nll"] <= 88.0
