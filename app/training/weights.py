"""weights.safetensors: the PyTorch parameters of a version, stored in float16.

The ONNX graphs are the float32 truth that serves and is evaluated; the weights are kept to
inspect a model or to start another training from it, for which half precision is plenty and
halves what a version costs on disk."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from app.repository.manifest import Manifest
from app.repository.store import MANIFEST, ModelRepository, file_hashes
from app.training.config import TrainConfig
from app.training.modules import BaseVAE

WEIGHTS_FILE = "weights.safetensors"


def save_weights(state: dict[str, torch.Tensor], path: Path, config_json: str) -> None:
    """Writes a state dict as float16 safetensors with the training config in its metadata."""
    tensors = {
        k: (v.detach().half() if v.is_floating_point() else v.detach()).contiguous()
        for k, v in state.items()
    }
    save_file(tensors, str(path), metadata={"config": config_json, "dtype": "float16"})


def compact_version(repository: ModelRepository, name: str, version: int) -> int:
    """Rewrites a version's weights in float16 (atomically) and updates the manifest's hash.
    Returns the bytes saved."""
    directory = repository.version_dir(name, version)
    path = directory / WEIGHTS_FILE
    before = path.stat().st_size
    state = load_file(str(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".weights-")
    os.close(fd)
    with safe_open(str(path), "pt") as source:
        metadata = source.metadata() or {}
    save_weights(state, Path(tmp), metadata.get("config", "{}"))
    os.replace(tmp, path)
    manifest = repository.manifest(name, version)
    files = file_hashes(directory)
    text = manifest.model_copy(update={"files": files}).model_dump_json(indent=2) + "\n"
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".manifest-")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, directory / MANIFEST)
    return before - path.stat().st_size


def load_model(directory: Path, manifest: Manifest) -> BaseVAE:
    """A version's PyTorch model, rebuilt from its config (in the weights' metadata) and its
    weights (float16 on disk, float32 in memory), in evaluation mode."""
    from app.training.kinds import build_model  # the table imports the exporters

    path = directory / WEIGHTS_FILE
    with safe_open(str(path), "pt") as source:
        metadata = source.metadata() or {}
    config = TrainConfig.model_validate_json(metadata["config"])
    model = build_model(config, manifest.image.shape, len(manifest.classes))
    state = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    model.load_state_dict(state)
    return model.eval()
