"""Publishing an imported graph pair: checked (file hashes, a trial run), reported
(reconstructions), then written as the next version in one rename, or not at all."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.importers.checks import GraphPair, ImportRefused, check_hashes, trial_run
from app.importers.report import reconstructions
from app.repository.manifest import Manifest
from app.repository.store import ModelRepository
from app.storage.files import check_name

PRIOR_NOTE = (
    "its latents are what a diffusion model denoises, not draws from N(0, I): make latents "
    "with the diffusion model (or /encode an image) and POST them to /decode"
)


def publish_checked(
    repository: ModelRepository, name: str, staging: Path, manifest: Manifest
) -> tuple[int, Manifest]:
    """Trial-runs the graphs in `staging`, draws the report, and publishes the version (the
    staging directory is removed when a check fails). Returns the version and its manifest."""
    try:
        pair = GraphPair.load(staging, manifest)
        trial = trial_run(pair)
        report = reconstructions(pair, staging)
        manifest = manifest.model_copy(
            update={"source": {**manifest.source, "trial": trial, "reconstructions": report}}
        )
        version = repository.publish(name, staging, manifest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return version, repository.manifest(name, version)


def _graph_hashes(files: dict[str, str], encoder: Path, decoder: Path) -> dict[str, str]:
    """The manifest's hashes keyed by the names the graphs get in the version."""
    renamed = {encoder.name: "encoder.onnx", decoder.name: "decoder.onnx"}
    return {renamed.get(key, key): digest for key, digest in files.items()}


def manifest_for_import(data: dict[str, Any], name: str) -> Manifest:
    """A user's manifest.json for an imported pair, with what the importer fills in."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    filled = {
        "likelihood": "gaussian",
        "kind": "autoencoder",
        "prior_meaningful": False,
        "prior_note": PRIOR_NOTE,
        **data,
        "name": name,
        "version": 0,
        "created_at": now,
    }
    if "latent_dim" not in filled and isinstance(filled.get("spatial"), dict):
        filled["latent_dim"] = filled["spatial"].get("latent_channels", 0)
    try:
        manifest = Manifest.model_validate(filled)
    except ValidationError as error:
        raise ImportRefused(f"the manifest is not valid: {error}") from None
    if manifest.kind != "autoencoder" or manifest.spatial is None:
        raise ImportRefused("an imported pair is kind `autoencoder` with a `spatial` block")
    return manifest


def import_onnx(
    repository: ModelRepository, name: str, encoder: Path, decoder: Path, manifest_path: Path
) -> tuple[int, Manifest]:
    """`vae import onnx`: copies the pair into a staging version, checks the files against
    the manifest's `files` hashes when it gives them, trial-runs and publishes."""
    check_name(name)
    data = json.loads(manifest_path.read_text())
    expected = _graph_hashes(data.pop("files", {}) or {}, encoder, decoder)
    manifest = manifest_for_import(data, name)
    staging = repository.staging_dir(name)
    try:
        shutil.copyfile(encoder, staging / "encoder.onnx")
        shutil.copyfile(decoder, staging / "decoder.onnx")
        check_hashes(staging, expected)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return publish_checked(repository, name, staging, manifest)
