"""A VQ-VAE trains small on the stroke digits and answers the four endpoints over HTTP: codes
out of /encode, codes into /decode, /interpolate before quantization, /sample from its learned
PixelCNN prior (seeded, not uniform), and 422s for codes it cannot take."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.repository.store import ModelRepository
from app.training.config import TrainConfig
from app.training.pipeline import run_training
from tests.support.dataset_builders import png_b64
from tests.support.paths import ROOT
from tests.support.processes import ServiceProcess, running_service
from tests.support.synthetic import stroke_digits, write_npz

K, D = 16, 4
TINY = {
    "kind": "vqvae",
    "epochs": 2,
    "num_embeddings": K,
    "embedding_dim": D,
    "conv_channels": [8, 16],
    "prior_epochs": 6,
    "prior_channels": 16,
    "prior_layers": 3,
}


@pytest.fixture(scope="module")
def vq_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("vqvae")
    data = write_npz(root / "strokes.npz", 1500)
    repository = ModelRepository(root / "models")
    run_training(TrainConfig.model_validate(TINY), data, "vq", repository)
    env = {"VAE_MODELS_DIR": str(root / "models"), "VAE_DEFAULT_MODEL": "vq"}
    with running_service(env, root) as service:
        yield service


def manifest_of(http: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = http.get("/models/vq").json()["versions"][0]["manifest"]
    return manifest


def test_the_manifest_describes_the_code_grid_and_the_vq_metrics(
    vq_service: ServiceProcess, tmp_path: Path
) -> None:
    with vq_service.client() as http:
        manifest = manifest_of(http)
    assert manifest["kind"] == "vqvae"
    assert manifest["grid"] == [7, 7] and manifest["codebook_size"] == K
    assert manifest["embedding_dim"] == D and manifest["latent_dim"] == D * 49
    assert {"prior.onnx", "codebook.npy", "encoder.onnx", "decoder.onnx"} <= set(manifest["files"])
    assert manifest["parity"]["max_abs_err"] <= 1e-4
    metrics = manifest["metrics"]
    assert metrics["iwae_nll"] is None and metrics["kl_per_dim"] is None
    # The ELBO with the learned prior: reconstruction plus the prior's NLL of the codes.
    assert metrics["elbo"] == pytest.approx(-(metrics["reconstruction_nll"] + metrics["prior_nll"]))
    assert metrics["prior_nll"] > 0 and 1 <= metrics["codes_used"] <= K
    assert 1.0 <= metrics["perplexity"] <= K
    assert metrics["vq_loss"] >= metrics["reconstruction_nll"]
    assert "frechet_distance" in metrics["quality"]


def test_codes_go_out_of_encode_and_into_decode(vq_service: ServiceProcess) -> None:
    images, _ = stroke_digits(3, seed=5)
    with vq_service.client() as http:
        encoded = http.post("/encode", json={"images": [png_b64(d) for d in images]})
        assert encoded.status_code == 200, encoded.text
        entries = encoded.json()["latents"]
        codes = [entry["codes"] for entry in entries]
        grid = np.array(codes)
        assert grid.shape == (3, 7, 7) and grid.min() >= 0 and grid.max() < K
        assert len(entries[0]["z_e"]) == D * 49 and entries[0]["cached"] is False
        by_codes = http.post("/decode", json={"codes": codes, "format": "array"})
        assert by_codes.status_code == 200, by_codes.text
        # z_e decodes through the same nearest codes as the codes themselves
        by_z_e = http.post(
            "/decode", json={"latents": [e["z_e"] for e in entries], "format": "array"}
        )
        assert by_z_e.status_code == 200, by_z_e.text
        np.testing.assert_allclose(
            np.array(by_codes.json()["arrays"]), np.array(by_z_e.json()["arrays"]), atol=1e-5
        )
        png = http.post("/decode", json={"codes": codes[:1]})
        assert png.status_code == 200 and len(png.json()["images"]) == 1


def npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_codes_and_z_e_travel_as_npy_too(vq_service: ServiceProcess) -> None:
    images, _ = stroke_digits(2, seed=4)
    headers = {"content-type": "application/x-npy", "accept": "application/x-npy"}
    with vq_service.client() as http:
        raw = http.post("/encode", content=npy(images[:, None]), headers=headers)
        assert raw.status_code == 200, raw.text
        z_e = np.load(io.BytesIO(raw.content))
        as_json = http.post("/encode", json={"images": [png_b64(d) for d in images]}).json()
        assert z_e.shape == (2, D * 49) and z_e.dtype == np.float32
        np.testing.assert_allclose(z_e, [e["z_e"] for e in as_json["latents"]], atol=1e-5)
        codes = np.array([e["codes"] for e in as_json["latents"]], dtype=np.int64)
        by_codes = http.post("/decode", content=npy(codes), headers=headers)
        assert by_codes.status_code == 200, by_codes.text
        by_z_e = http.post("/decode", content=npy(z_e), headers=headers)
        np.testing.assert_allclose(
            np.load(io.BytesIO(by_codes.content)), np.load(io.BytesIO(by_z_e.content)), atol=1e-5
        )
        bad = http.post("/decode", content=npy(codes + K), headers=headers)
        assert bad.status_code == 422 and "0..15" in bad.json()["message"]


@pytest.mark.parametrize(
    ("codes", "needle"),
    [
        ([[[K] * 7] * 7], "0..15"),
        ([[[-1] * 7] * 7], "0..15"),
        ([[[0] * 6] * 7], "7 x 7"),
        ([[[0] * 7] * 5], "7 x 7"),
        ([[[0] * 7] * 6 + [[0] * 6]], "integer"),
        ([[[1.5] * 7] * 7], ""),
    ],
)
def test_codes_the_model_cannot_take_get_a_422(
    vq_service: ServiceProcess, codes: Any, needle: str
) -> None:
    with vq_service.client() as http:
        response = http.post("/decode", json={"codes": codes})
        assert response.status_code == 422, response.text
        assert needle in response.json()["message"]


def test_other_requests_a_vqvae_refuses(vq_service: ServiceProcess) -> None:
    images, _ = stroke_digits(1, seed=1)
    with vq_service.client() as http:
        draws = http.post("/encode", json={"images": [png_b64(images[0])], "samples": 2})
        assert draws.status_code == 422 and "deterministic" in draws.json()["message"]
        short = http.post("/decode", json={"latents": [[0.0] * 4]})
        assert short.status_code == 422 and str(D * 49) in short.json()["message"]
        both = http.post("/decode", json={"latents": [[0.0] * D * 49], "codes": [[[0] * 7] * 7]})
        assert both.status_code == 422


def histogram(codes: Any) -> np.ndarray:
    array = np.asarray(codes)
    return np.bincount(array.ravel(), minlength=K) / array.size


def test_samples_come_from_the_learned_prior_and_repeat_with_a_seed(
    vq_service: ServiceProcess,
) -> None:
    digits, _ = stroke_digits(64, seed=11)
    with vq_service.client() as http:
        encoded = http.post("/encode", json={"images": [png_b64(d) for d in digits]}).json()
        data = histogram([entry["codes"] for entry in encoded["latents"]])
        first = http.post("/sample", json={"n": 64, "seed": 7})
        assert first.status_code == 200, first.text
        again = http.post("/sample", json={"n": 64, "seed": 7}).json()
        other = http.post("/sample", json={"n": 64, "seed": 8}).json()
        body = first.json()
        assert body["codes"] == again["codes"] and body["images"] == again["images"]
        assert body["codes"] != other["codes"]
        codes = np.array(body["codes"])
        assert codes.shape == (64, 7, 7) and len(body["latents"][0]) == D * 49
        # Not uniform codes: the sampled codes' frequencies are far from uniform (chi-square
        # with K - 1 = 15 degrees of freedom; 50 has p < 1e-5) and nearer to the data's codes
        # than uniform draws are (total variation).
        sampled = histogram(codes)
        chi_square = codes.size * K * np.sum((sampled - 1.0 / K) ** 2)
        assert chi_square > 50.0
        assert np.abs(sampled - data).sum() < np.abs(1.0 / K - data).sum()
        # the latents are the codes' codebook vectors: decoding them gives the same images
        decoded = http.post("/decode", json={"codes": body["codes"][:2]}).json()
        assert decoded["images"] == body["images"][:2]
        greedy = http.post("/sample", json={"n": 2, "temperature": 0, "seed": 1}).json()
        greedy_again = http.post("/sample", json={"n": 2, "temperature": 0, "seed": 2}).json()
        assert greedy["codes"] == greedy_again["codes"]


def test_interpolation_runs_before_quantization(vq_service: ServiceProcess) -> None:
    images, _ = stroke_digits(1, seed=9)
    with vq_service.client() as http:
        entry = http.post("/encode", json={"images": [png_b64(images[0])]}).json()["latents"][0]
        end_codes = [[1] * 7] * 7
        path = http.post(
            "/interpolate",
            json={
                "start": {"image": png_b64(images[0])},
                "end": {"codes": end_codes},
                "steps": 5,
                "method": "lerp",
            },
        )
        assert path.status_code == 200, path.text
        body = path.json()
        latents = np.array(body["latents"])
        assert latents.shape == (5, D * 49) and len(body["images"]) == 5
        np.testing.assert_allclose(latents[0], entry["z_e"], atol=1e-5)
        # each point decodes as the codes it quantizes to; the ends as their own codes
        assert body["codes"][0] == entry["codes"] and body["codes"][-1] == end_codes
        bad = http.post(
            "/interpolate",
            json={"start": {"codes": [[99] * 7] * 7}, "end": {"latent": [0.0] * D * 49}},
        )
        assert bad.status_code == 422


def test_vae_evaluate_scores_a_vqvae_from_its_graphs(vq_service: ServiceProcess) -> None:
    root = vq_service.log.parent  # the fixture's directory: strokes.npz and models/
    result = subprocess.run(
        [sys.executable, "-m", "app.cli", "evaluate", "--data", str(root / "strokes.npz"),
         "--model", "vq", "--images", "100", "--models-dir", str(root / "models")],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    metrics = json.loads(result.stdout)
    assert metrics["eval_images"] == 100 and metrics["iwae_nll"] is None
    assert metrics["elbo"] == pytest.approx(-(metrics["reconstruction_nll"] + metrics["prior_nll"]))
