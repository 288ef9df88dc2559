"""Tiny random-weight diffusers autoencoders, built from configs (nothing downloaded): an
AutoencoderKL with a mid-block attention and a TAESD-style AutoencoderTiny, both downscaling 2x,
and the helpers to import them as model versions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

KL_CONFIG: dict[str, Any] = {
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "block_out_channels": [8, 16],
    "layers_per_block": 1,
    "latent_channels": 4,
    "norm_num_groups": 4,
    "sample_size": 32,
    "scaling_factor": 0.3611,
    "shift_factor": 0.1159,
}
TINY_CONFIG: dict[str, Any] = {
    "encoder_block_out_channels": [8, 8],
    "decoder_block_out_channels": [8, 8],
    "num_encoder_blocks": [1, 1],
    "num_decoder_blocks": [1, 1],
    "latent_channels": 4,
}


def build(kind: str, seed: int = 0) -> Any:
    """A random-weight AutoencoderKL ("kl") or AutoencoderTiny ("tiny"), in eval mode."""
    import torch
    from diffusers import AutoencoderKL, AutoencoderTiny

    torch.manual_seed(seed)
    model = AutoencoderKL(**KL_CONFIG) if kind == "kl" else AutoencoderTiny(**TINY_CONFIG)
    return model.eval()


def save(kind: str, directory: Path, seed: int = 0) -> Any:
    """Builds the model, writes it as a diffusers folder (config.json, safetensors) and returns it."""
    model = build(kind, seed)
    model.save_pretrained(str(directory))
    return model


def import_both(models_dir: Path, work: Path) -> dict[str, Any]:
    """Imports a tiny kl and tiny model into `models_dir`; returns the diffusers models by name."""
    from app.repository.store import ModelRepository
    from app.training.import_diffusers import import_diffusers

    repository = ModelRepository(models_dir)
    made = {}
    for kind in ("kl", "tiny"):
        made[kind] = save(kind, work / kind)
        import_diffusers(repository, work / kind, kind)
    return made
