"""Every kind of the VAE family trains on MNIST-like data and answers the four endpoints over
HTTP from its ONNX graphs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.repository.store import ModelRepository
from app.training.config import TrainConfig
from app.training.pipeline import run_training
from tests.support.dataset_builders import png_b64
from tests.support.processes import ServiceProcess, running_service
from tests.support.synthetic import stroke_digits, write_npz

SMALL = {"epochs": 3, "eval_k": 20, "hidden": [128], "latent_dim": 4, "bottom_latent_dim": 8}


@pytest.fixture(scope="module")
def family(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("family")
    data = write_npz(root / "strokes.npz", 1500)
    repository = ModelRepository(root / "models")
    for kind in ("vae", "cvae", "hvae"):
        run_training(TrainConfig.model_validate({**SMALL, "kind": kind}), data, kind, repository)
    env = {"VAE_MODELS_DIR": str(root / "models"), "VAE_DEFAULT_MODEL": "vae"}
    with running_service(env, root) as service:
        yield service


@pytest.mark.parametrize("kind", ["vae", "cvae", "hvae"])
def test_each_kind_answers_the_four_endpoints(family: ServiceProcess, kind: str) -> None:
    images, _ = stroke_digits(2, seed=5)
    label = {"label": 1} if kind == "cvae" else {}
    with family.client() as http:
        manifest = http.get(f"/models/{kind}").json()["versions"][0]["manifest"]
        assert manifest["kind"] == kind
        encoded = http.post(
            "/encode", json={"model": kind, "images": [png_b64(d) for d in images], **label}
        )
        assert encoded.status_code == 200, encoded.text
        mu = encoded.json()["latents"][0]["mu"]
        assert len(mu) == 4
        decoded = http.post("/decode", json={"model": kind, "latents": [mu], **label})
        assert decoded.status_code == 200, decoded.text
        sampled = http.post("/sample", json={"model": kind, "n": 3, "seed": 2, **label})
        assert sampled.status_code == 200, sampled.text
        assert len(sampled.json()["images"]) == 3 and len(sampled.json()["latents"][0]) == 4
        path = http.post(
            "/interpolate",
            json={
                "model": kind,
                "start": {"image": png_b64(images[0])},
                "end": {"latent": [0.0] * 4},
                "steps": 4,
                **label,
            },
        )
        assert path.status_code == 200, path.text
        np.testing.assert_allclose(path.json()["latents"][0], mu, atol=1e-5)


def test_a_conditional_model_needs_a_valid_label(family: ServiceProcess) -> None:
    with family.client() as http:
        manifest = http.get("/models/cvae").json()["versions"][0]["manifest"]
        assert manifest["label_values"] == [0, 1, 2, 3]
        missing = http.post("/sample", json={"model": "cvae", "n": 2})
        assert missing.status_code == 422 and "[0, 1, 2, 3]" in missing.json()["message"]
        wrong = http.post("/sample", json={"model": "cvae", "n": 2, "label": 9})
        assert wrong.status_code == 422 and "[0, 1, 2, 3]" in wrong.json()["message"]
        same_z = {"model": "cvae", "latents": [[0.5, -0.5, 0.2, 0.1]], "format": "array"}
        zero = np.array(http.post("/decode", json={**same_z, "label": 0}).json()["arrays"])
        three = np.array(http.post("/decode", json={**same_z, "label": 3}).json()["arrays"])
        assert np.abs(zero - three).mean() > 0.01  # the label changes what is drawn


def test_a_hierarchical_model_samples_ancestrally_and_gives_both_layers(
    family: ServiceProcess,
) -> None:
    images, _ = stroke_digits(1, seed=6)
    with family.client() as http:
        both = http.post(
            "/encode", json={"model": "hvae", "images": [png_b64(images[0])], "layers": "all"}
        ).json()
        entry = both["latents"][0]
        assert (
            len(entry["mu"]) == 4
            and len(entry["mu_bottom"]) == 8
            and len(entry["sigma_bottom"]) == 8
        )
        first = http.post("/sample", json={"model": "hvae", "n": 2, "seed": 3}).json()
        again = http.post("/sample", json={"model": "hvae", "n": 2, "seed": 3}).json()
        assert first["images"] == again["images"]
        # the same top latents decode (lower layer at its mean) deterministically
        one = http.post("/decode", json={"model": "hvae", "latents": first["latents"]}).json()
        two = http.post("/decode", json={"model": "hvae", "latents": first["latents"]}).json()
        assert one["images"] == two["images"]
