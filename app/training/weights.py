"""weights.safetensors: the PyTorch parameters of a version, stored in float16.

Half precision halves what a version costs on disk. A trained model is rounded to it before
anything is exported (`round_to_stored_precision`), so the ONNX graphs (float32 arithmetic),
the held-out evaluation and the weights file all describe one model: `vae evaluate` rebuilding
a version from its weights computes exactly what its manifest reports."""

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


def round_to_stored_precision(model: torch.nn.Module) -> None:
    """Rounds every floating parameter and buffer of `model` to float16 and back, in place."""
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())


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
