"""`vae import diffusers` and `vae import onnx`: what is checked before a version is published
(parity with diffusers at untraced sizes, file hashes, a trial run), and that a refused import
leaves no version and no staging directory behind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from app.cli import app
from app.importers.checks import GraphPair, ImportRefused
from app.importers.publish import import_onnx
from app.repository.store import ModelRepository
from tests.support.autoencoders import save
from tests.support.paths import ROOT

onnx = pytest.importorskip("onnx")
numpy_helper = pytest.importorskip("onnx.numpy_helper")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModelRepository, Path, Any]:
    """A tiny AutoencoderKL folder imported once as kl:1."""
    from app.training.import_diffusers import import_diffusers

    root = tmp_path_factory.mktemp("import")
    vae = save("kl", root / "kl")
    repository = ModelRepository(root / "models")
    import_diffusers(repository, root / "kl", "kl")
    return repository, root, vae


def _tamper(graph: Path) -> None:
    """Adds 0.5 to the largest initializer of an ONNX graph (a changed weight)."""
    model = onnx.load(str(graph))
    largest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    values = numpy_helper.to_array(largest) + np.float32(0.5)
    largest.CopyFrom(numpy_helper.from_array(values.astype(np.float32), largest.name))
    onnx.save(model, str(graph))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _no_staging(repository: ModelRepository, name: str) -> bool:
    return not list((repository.root / name).glob(".staging-*"))


def test_an_imported_autoencoder_is_published_with_its_checks_and_report(
    imported: tuple[ModelRepository, Path, Any],
) -> None:
    repository, _, _ = imported
    manifest = repository.manifest("kl", 1)
    assert manifest.kind == "autoencoder" and manifest.spatial is not None
    assert manifest.spatial.downscale == 2 and manifest.latent_shape == (4, 16, 16)
    assert manifest.value_range == (-1.0, 1.0) and not manifest.prior_meaningful
    assert manifest.scaling_factor == pytest.approx(0.3611)
    assert manifest.shift_factor == pytest.approx(0.1159)
    assert manifest.parity["max_rel_err"] < 1e-3
    assert "reconstruction_mae" in manifest.source["reconstructions"]
    assert (repository.version_dir("kl", 1) / "report" / "reconstructions.png").is_file()


def test_a_graph_changed_after_export_fails_the_parity_gate(
    imported: tuple[ModelRepository, Path, Any], tmp_path: Path
) -> None:
    from app.training.import_diffusers import ParityError, check_parity, export_autoencoder

    repository, _, vae = imported
    export_autoencoder(vae, "AutoencoderKL", tmp_path, trace_size=16)
    _tamper(tmp_path / "decoder.onnx")
    pair = GraphPair.load(tmp_path, repository.manifest("kl", 1))
    with pytest.raises(ParityError, match="nothing published"):
        check_parity(vae, "AutoencoderKL", pair, [(20, 14), (12, 22)])


def test_a_refused_diffusers_import_publishes_nothing(
    imported: tuple[ModelRepository, Path, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.training import import_diffusers as module

    repository, root, _ = imported
    exported = module.export_autoencoder

    def export_then_tamper(*args: Any, **kwargs: Any) -> list[str]:
        outputs = exported(*args, **kwargs)
        _tamper(args[2] / "encoder.onnx")
        return outputs

    monkeypatch.setattr(module, "export_autoencoder", export_then_tamper)
    with pytest.raises(module.ParityError):
        module.import_diffusers(repository, root / "kl", "refused")
    assert repository.versions("refused") == [] and _no_staging(repository, "refused")


def _pair_manifest(repository: ModelRepository, directory: Path, hashes: bool) -> Path:
    data = json.loads((repository.version_dir("kl", 1) / "manifest.json").read_text())
    keep = ("image", "spatial", "value_range", "scaling_factor", "shift_factor", "dtypes")
    manifest: dict[str, Any] = {key: data[key] for key in keep}
    if hashes:
        manifest["files"] = {
            "my-encoder.onnx": _sha256(directory / "my-encoder.onnx"),
            "my-decoder.onnx": _sha256(directory / "my-decoder.onnx"),
        }
    path = directory / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


@pytest.fixture
def pair(
    imported: tuple[ModelRepository, Path, Any], tmp_path: Path
) -> tuple[ModelRepository, Path, Path]:
    """kl:1's graphs copied into tmp_path as my-encoder.onnx and my-decoder.onnx."""
    repository, _, _ = imported
    version = repository.version_dir("kl", 1)
    encoder, decoder = tmp_path / "my-encoder.onnx", tmp_path / "my-decoder.onnx"
    shutil.copyfile(version / "encoder.onnx", encoder)
    shutil.copyfile(version / "decoder.onnx", decoder)
    return repository, encoder, decoder


def test_vae_import_onnx_publishes_a_pair_that_passes_its_trial_run(
    pair: tuple[ModelRepository, Path, Path], tmp_path: Path
) -> None:
    repository, encoder, decoder = pair
    manifest = _pair_manifest(repository, tmp_path, hashes=True)
    result = CliRunner().invoke(
        app, ["import", "onnx", "--encoder", str(encoder), "--decoder", str(decoder),
              "--manifest", str(manifest), "--name", "pair", "--models-dir", str(repository.root)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    published = repository.manifest("pair", 1)
    assert published.kind == "autoencoder" and published.source["trial"]["range_overshoot"] >= 0


def test_vae_import_onnx_refuses_a_tampered_graph(
    pair: tuple[ModelRepository, Path, Path], tmp_path: Path
) -> None:
    repository, encoder, decoder = pair
    manifest = _pair_manifest(repository, tmp_path, hashes=True)
    _tamper(encoder)
    with pytest.raises(ImportRefused, match=r"encoder\.onnx has sha256"):
        import_onnx(repository, "tampered", encoder, decoder, manifest)
    assert repository.versions("tampered") == [] and _no_staging(repository, "tampered")


def test_vae_import_onnx_refuses_a_pair_whose_trial_run_disagrees_with_the_manifest(
    pair: tuple[ModelRepository, Path, Path], tmp_path: Path
) -> None:
    repository, encoder, decoder = pair
    manifest = _pair_manifest(repository, tmp_path, hashes=False)
    data = json.loads(manifest.read_text())
    data["spatial"]["downscale"] = 4  # the graphs downscale 2x
    manifest.write_text(json.dumps(data))
    with pytest.raises(ImportRefused, match="the manifest says"):
        import_onnx(repository, "wrong", encoder, decoder, manifest)
    swapped = _pair_manifest(repository, tmp_path, hashes=False)
    with pytest.raises(ImportRefused, match="encoder failed"):
        import_onnx(repository, "swapped", decoder, encoder, swapped)
    assert repository.versions("wrong") == repository.versions("swapped") == []


def test_a_float16_import_passes_its_gate_and_serves_float16_graphs(
    imported: tuple[ModelRepository, Path, Any],
) -> None:
    from app.training.import_diffusers import import_diffusers

    repository, root, _ = imported
    save("tiny", root / "tiny")
    version, manifest = import_diffusers(repository, root / "tiny", "tiny16", fp16=True)
    assert manifest.dtypes.encoder == manifest.dtypes.decoder == "float16"
    pair = GraphPair.load(repository.version_dir("tiny16", version), manifest)
    assert pair.encoder.get_inputs()[0].type == "tensor(float16)"
    from app.config import Settings
    from app.serving.spatial_graphs import load_spatial_graphs

    # ONNX Runtime, as `pair` runs it: the same float16 arithmetic, so the same images exactly
    settings = Settings(
        models_dir=repository.root, threads=1, engine="onnxruntime", precision="fp32"
    )
    _, decoder = load_spatial_graphs(repository.version_dir("tiny16", version), manifest, settings)
    z = np.random.default_rng(0).standard_normal((2, 4, 6, 10)).astype(np.float32)
    images = decoder.run(z)["x"]  # float32 in and out, float16 inside
    assert images.dtype == np.float32 and images.shape == (2, 3, 12, 20)
    assert np.abs(images - pair.decode(z)).max() == 0


def test_vae_import_diffusers_says_what_it_published_and_nothing_else(tmp_path: Path) -> None:
    save("kl", tmp_path / "kl")
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "import", "diffusers", str(tmp_path / "kl"),
         "--name", "kl", "--fp16", "--models-dir", str(tmp_path / "models")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = (done.stdout + done.stderr).strip().splitlines()
    assert len(said) == 1 and said[0].startswith("published kl:1 (AutoencoderKL"), said
