"""`vae import diffusers DIR`: a local diffusers `AutoencoderKL` or `AutoencoderTiny` (TAESD)
folder (config.json and safetensors weights) exported to ONNX with dynamic batch, height and
width, checked against diffusers' own modules at two sizes that were not traced, and published
with a reconstructions report. Nothing is downloaded (the folder is read with
`local_files_only`)."""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from app.importers.checks import GraphPair
from app.importers.publish import PRIOR_NOTE, publish_checked
from app.repository.manifest import GraphDtypes, ImageSpec, Manifest, SpatialSpec
from app.repository.store import ModelRepository
from app.storage.files import check_name
from app.training.export import export_onnx

TOLERANCE = {"float32": 1e-3, "float16": 5e-2}
"""Largest |ONNX Runtime - diffusers| allowed, relative to max(1, the outputs' largest
magnitude): float32 graphs agree to ~1e-5 (kernel order); float16 carries ~3 decimal digits,
and a deep decoder's errors add up to ~1e-2."""
SUPPORTED = ("AutoencoderKL", "AutoencoderTiny")


class ParityError(RuntimeError):
    """ONNX Runtime disagrees with diffusers beyond the tolerance: nothing is published."""


class _Wrapped(nn.Module):
    """One graph (an encode or a decode) of a diffusers model, for tracing to ONNX."""

    def __init__(self, vae: Any) -> None:
        super().__init__()
        self.vae: Any = vae


class KLEncoder(_Wrapped):
    """Image [N,3,H,W] in [-1,1] -> the latent distribution's mean and log-variance."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dist = self.vae.encode(x).latent_dist
        return dist.mean, dist.logvar


class TinyEncoder(_Wrapped):
    """Image [N,3,H,W] in [-1,1] -> TAESD's latents (a deterministic encoder)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(x).latents


class Decoder(_Wrapped):
    """Latents [N,C,h,w] (unscaled) -> image [N,3,H,W] in [-1,1]."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z).sample


def load_autoencoder(directory: Path) -> tuple[nn.Module, str]:
    """The diffusers model in `directory` (float32, eval mode) and its class name."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    config_path = directory / "config.json"
    if not config_path.is_file():
        raise ValueError(f"{directory} has no config.json: not a diffusers model folder")
    class_name = json.loads(config_path.read_text()).get("_class_name", "")
    if class_name not in SUPPORTED:
        raise ValueError(f"{class_name or 'this model'} is not one of {', '.join(SUPPORTED)}")
    import diffusers

    cls = getattr(diffusers, class_name)
    # low_cpu_mem_usage=False: what diffusers falls back to without `accelerate`, said up front
    # so that it does not print its advice to install it on every import.
    model = cls.from_pretrained(
        str(directory), local_files_only=True, torch_dtype=torch.float32, low_cpu_mem_usage=False
    )
    return model.eval(), class_name


def _graphs(vae: nn.Module, class_name: str) -> tuple[nn.Module, list[str], nn.Module]:
    if class_name == "AutoencoderTiny":
        return TinyEncoder(vae), ["mu"], Decoder(vae)
    return KLEncoder(vae), ["mu", "logvar"], Decoder(vae)


def downscale_of(encoder: nn.Module, size: int = 64) -> tuple[int, int]:
    """(pixels per latent cell, latent channels), measured by encoding one image."""
    with torch.no_grad():
        out = encoder(torch.zeros(1, 3, size, size))
    latent = out[0] if isinstance(out, tuple) else out
    return size // int(latent.shape[-1]), int(latent.shape[1])


def export_autoencoder(
    vae: nn.Module, class_name: str, directory: Path, trace_size: int, fp16: bool = False
) -> list[str]:
    """Writes encoder.onnx and decoder.onnx (dynamic N, H, W) into `directory`, traced at
    trace_size x trace_size; returns the encoder's output names."""
    encoder, outputs, decoder = _graphs(vae.float(), class_name)
    scale, channels = downscale_of(encoder)
    dtype = torch.float16 if fp16 else torch.float32
    if fp16:  # nn.Module's own cast: diffusers' `to(dtype)` warns on every call
        vae.half()
    x = torch.zeros(1, 3, trace_size, trace_size, dtype=dtype)
    z = torch.zeros(1, channels, trace_size // scale, trace_size // scale, dtype=dtype)
    grid = {0: "N", 2: "h", 3: "w"}
    image = {0: "N", 2: "H", 3: "W"}
    encoder_axes = {"x": image, **{name: grid for name in outputs}}
    export_onnx(encoder, (x,), directory / "encoder.onnx", ["x"], outputs, encoder_axes)
    export_onnx(decoder, (z,), directory / "decoder.onnx", ["z"], ["x"], {"z": grid, "x": image})
    vae.float()
    return outputs


def check_parity(
    vae: nn.Module, class_name: str, pair: GraphPair, sizes: list[tuple[int, int]], seed: int = 0
) -> float:
    """Largest relative |ONNX Runtime - diffusers| over both graphs at `sizes` (a batch of
    two each); ParityError past the tolerance of the graphs' dtype."""
    encoder, outputs, decoder = _graphs(vae.float(), class_name)
    generator = torch.Generator().manual_seed(seed)
    worst = 0.0
    for height, width in sizes:
        x = torch.rand(2, 3, height, width, generator=generator) * 2 - 1
        with torch.no_grad():
            theirs = encoder(x)
            theirs = theirs if isinstance(theirs, tuple) else (theirs,)
            images = decoder(theirs[0])
        ours = pair.encode(x.numpy())
        compared = [(ours[name], t.numpy()) for name, t in zip(outputs, theirs, strict=True)]
        compared.append((pair.decode(theirs[0].numpy()), images.numpy()))
        for got, want in compared:
            if got.shape != want.shape:
                raise ParityError(
                    f"ONNX Runtime gives {list(got.shape)}, diffusers {list(want.shape)}"
                )
            scale = max(1.0, float(np.abs(want).max()))
            worst = max(worst, float(np.abs(got - want).max()) / scale)
    tolerance = TOLERANCE[pair.manifest.dtypes.decoder]
    if not worst <= tolerance:
        raise ParityError(
            f"ONNX Runtime differs from diffusers by {worst:.2e} (relative; the gate is "
            f"{tolerance:g}): nothing published"
        )
    return worst


def manifest_for(
    vae: nn.Module, class_name: str, name: str, scale: int, channels: int, fp16: bool
) -> Manifest:
    """The manifest of an imported diffusers autoencoder (version and files filled on publish)."""
    config: dict[str, Any] = dict(getattr(vae, "config", {}))
    size = int(config.get("sample_size") or 512)
    size = size if isinstance(size, int) else 512
    dtype = "float16" if fp16 else "float32"
    return Manifest(
        name=name,
        version=0,
        kind="autoencoder",
        latent_dim=channels,
        image=ImageSpec(height=size, width=size, channels=3),
        likelihood="gaussian",
        spatial=SpatialSpec(latent_channels=channels, downscale=scale, min_size=scale),
        value_range=(-1.0, 1.0),
        scaling_factor=float(config.get("scaling_factor") or 1.0),
        shift_factor=float(config.get("shift_factor") or 0.0),
        dtypes=GraphDtypes(encoder=dtype, decoder=dtype),
        prior_meaningful=False,
        prior_note=PRIOR_NOTE,
        source={
            "format": "diffusers",
            "class": class_name,
            "config": json.loads(json.dumps(config, default=str)),
        },
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def parity_sizes(scale: int, trace_size: int) -> list[tuple[int, int]]:
    """Two sizes that differ from the traced one (one not square)."""
    return [
        (trace_size + 2 * scale, trace_size - scale),
        (trace_size - 2 * scale, trace_size + 3 * scale),
    ]


def import_diffusers(
    repository: ModelRepository, directory: Path, name: str, fp16: bool = False
) -> tuple[int, Manifest]:
    """Exports, checks and publishes a diffusers autoencoder as the next version of `name`."""
    check_name(name)
    vae, class_name = load_autoencoder(directory)
    encoder, _, _ = _graphs(vae, class_name)
    scale, channels = downscale_of(encoder)
    trace_size = 8 * scale
    manifest = manifest_for(vae, class_name, name, scale, channels, fp16)
    staging = repository.staging_dir(name)
    try:
        export_autoencoder(vae, class_name, staging, trace_size, fp16)
        pair = GraphPair.load(staging, manifest)
        worst = check_parity(vae, class_name, pair, parity_sizes(scale, trace_size))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    manifest = manifest.model_copy(
        update={
            "parity": {"max_rel_err": worst},
            "source": {**manifest.source, "traced": trace_size},
        }
    )
    return publish_checked(repository, name, staging, manifest)
