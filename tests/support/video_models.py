"""Tiny random-weight diffusers video autoencoders, built from configs (nothing downloaded):
AutoencoderKLHunyuanVideo, AutoencoderKLWan, AutoencoderKLLTXVideo and AutoencoderKLQwenImage
with the classes' real compression ratios and latent channels (LTX-Video's are shrunk: its class
takes any) but a handful of feature channels and one layer a block, so that exporting and
checking one takes seconds; and the helpers to import them as model versions."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

VIDEO_CLASSES = (
    "AutoencoderKLHunyuanVideo",
    "AutoencoderKLLTXVideo",
    "AutoencoderKLWan",
    "AutoencoderKLQwenImage",
)

HUNYUAN_CONFIG: dict[str, Any] = {
    # three blocks keep the real 8x spatial and 4x temporal compression
    "down_block_types": ["HunyuanVideoDownBlock3D"] * 3,
    "up_block_types": ["HunyuanVideoUpBlock3D"] * 3,
    "block_out_channels": [8, 8, 16],
    "layers_per_block": 1,
    "norm_num_groups": 4,
    "latent_channels": 16,
}
WAN_CONFIG: dict[str, Any] = {
    "base_dim": 8,
    "z_dim": 16,
    "dim_mult": [1, 2, 2, 2],
    "num_res_blocks": 1,
    "temperal_downsample": [False, True, True],
}
WAN_2_2_OVERRIDES: dict[str, Any] = {
    # Wan 2.2's TI2V-5B VAE: residual blocks, 2x2 patches, 48 latent channels, 16x in space
    "z_dim": 48,
    "is_residual": True,
    "patch_size": 2,
    "in_channels": 12,
    "out_channels": 12,
    "scale_factor_spatial": 16,
    "latents_mean": [round(0.01 * i - 0.24, 3) for i in range(48)],
    "latents_std": [round(0.5 + 0.02 * i, 3) for i in range(48)],
}
"""`build("AutoencoderKLWan", **WAN_2_2_OVERRIDES)`: a tiny Wan 2.2 VAE."""
QWEN_CONFIG: dict[str, Any] = dict(WAN_CONFIG)
LTX_CONFIG: dict[str, Any] = {
    "latent_channels": 8,
    "block_out_channels": [8, 8, 16, 16],
    "decoder_block_out_channels": [8, 8, 16, 16],
    "layers_per_block": [1, 1, 1, 1, 1],
    "decoder_layers_per_block": [1, 1, 1, 1, 1],
    "spatio_temporal_scaling": [True, True, True, False],
    "decoder_spatio_temporal_scaling": [True, True, True, False],
    "decoder_inject_noise": [False, False, False, False, False],
    "upsample_residual": [False, False, False, False],
    "upsample_factor": [1, 1, 1, 1],
    "timestep_conditioning": False,
    "patch_size": 4,
    "patch_size_t": 1,
    "scaling_factor": 1.0,
}
LTX_TIMESTEP_OVERRIDES: dict[str, Any] = {
    # LTX-Video 0.9.1's decoder layout (three residual up blocks, timestep-conditioned) without
    # its noise injection: `build("AutoencoderKLLTXVideo", **LTX_TIMESTEP_OVERRIDES)`
    "decoder_block_out_channels": [8, 16, 32],
    "decoder_layers_per_block": [1, 1, 1, 1],
    "decoder_spatio_temporal_scaling": [True, True, True],
    "decoder_inject_noise": [False, False, False, False],
    "upsample_residual": [True, True, True],
    "upsample_factor": [2, 2, 2],
    "timestep_conditioning": True,
}
CONFIGS: dict[str, dict[str, Any]] = {
    "AutoencoderKLHunyuanVideo": HUNYUAN_CONFIG,
    "AutoencoderKLWan": WAN_CONFIG,
    "AutoencoderKLLTXVideo": LTX_CONFIG,
    "AutoencoderKLQwenImage": QWEN_CONFIG,
}


def build(class_name: str, seed: int = 0, **overrides: Any) -> Any:
    """A random-weight tiny model of a diffusers video autoencoder class, in eval mode
    (`overrides` change config entries, e.g. LTX-Video's `timestep_conditioning`)."""
    import diffusers
    import torch

    torch.manual_seed(seed)
    model = getattr(diffusers, class_name)(**{**CONFIGS[class_name], **overrides})
    if class_name == "AutoencoderKLLTXVideo":
        # LTX-Video keeps its per-channel statistics as buffers (zeros and ones at init):
        # values that are not the identity, so that normalisation shows when it is wrong.
        channels = model.latents_mean.shape[0]
        model.latents_mean.copy_(torch.linspace(-0.5, 0.5, channels))
        model.latents_std.copy_(torch.linspace(0.5, 2.0, channels))
    return model.eval()


def save(class_name: str, directory: Path, seed: int = 0, **overrides: Any) -> Any:
    """Builds the model, writes it as a diffusers folder (config.json, safetensors) and returns it."""
    model = build(class_name, seed, **overrides)
    model.save_pretrained(str(directory))
    return model


SMALL_FRAME_TILES: dict[str, tuple[int, int]] = {
    "AutoencoderKLHunyuanVideo": (8, 4),
    "AutoencoderKLLTXVideo": (16, 8),
}
"""diffusers' framewise tiling (tile_sample_min_num_frames, tile_sample_stride_num_frames) the
helper imports with: Hunyuan's shrunk from 16/12, so that a clip of 4+ latent frames spans
several tiles; LTX-Video's own."""


def import_video(models_dir: Path, work: Path, class_name: str, name: str) -> Any:
    """Imports a tiny model of `class_name` into `models_dir` as the next version of `name`
    (through the video importer, parity checked; a small example frame size in the manifest,
    4 x 6 latent cells) and returns the diffusers model, its framewise tiling set as the
    version's (`decode(z).sample` is then what the version serves)."""
    from app.repository.store import ModelRepository
    from app.training.import_video import (
        FrameTiles,
        compression,
        import_video_autoencoder,
        use_frame_tiles,
    )

    directory = work / f"{name}-{class_name}"
    model = save(class_name, directory)
    spatial = compression(model, class_name)[0]
    tiles = None
    if class_name in SMALL_FRAME_TILES:
        tiles = FrameTiles(*SMALL_FRAME_TILES[class_name])
        use_frame_tiles(model, tiles)
    import_video_autoencoder(
        ModelRepository(models_dir), directory, name, tiles, image=(4 * spatial, 6 * spatial)
    )
    return model
