"""ONNX export of the encoder and decoder graphs, and the parity gate that guards publishing."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from app.training.modules import VAE

PARITY_TOLERANCE = 1e-4
OPSET = 17


class ParityError(RuntimeError):
    """ONNX Runtime disagrees with PyTorch beyond the tolerance: the version must not publish."""


class EncoderGraph(nn.Module):
    """x [N,C,H,W] in [0,1] -> mu, logvar [N,D]."""

    def __init__(self, vae: VAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.vae.encode(x)


class DecoderGraph(nn.Module):
    """z [N,D] -> x_mean [N,C,H,W] in [0,1] and logits (Bernoulli) or x_logscale (Gaussian)."""

    def __init__(self, vae: VAE) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        params = self.vae.decode_params(z)
        mean = self.vae.mean(params)
        if self.vae.likelihood == "bernoulli":
            return mean, params
        return mean, torch.zeros_like(mean) + self.vae.pixel_scale()


def decoder_outputs(likelihood: str) -> list[str]:
    """Names of the decoder graph's outputs for a likelihood."""
    return ["x_mean", "logits" if likelihood == "bernoulli" else "x_logscale"]


def export_graphs(vae: VAE, directory: Path) -> dict[str, Path]:
    """Writes encoder.onnx and decoder.onnx with a dynamic batch axis into `directory`."""
    vae.eval()
    channels, height, width = vae.image
    example_x = torch.rand(2, channels, height, width)
    example_z = torch.randn(2, vae.config.latent_dim)
    paths = {"encoder": directory / "encoder.onnx", "decoder": directory / "decoder.onnx"}
    out_names = decoder_outputs(vae.likelihood)
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated but needs no extra packages and handles these
        # plain feed-forward graphs exactly; the parity gate below checks the result either way.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            EncoderGraph(vae),
            (example_x,),
            str(paths["encoder"]),
            input_names=["x"],
            output_names=["mu", "logvar"],
            dynamic_axes={"x": {0: "N"}, "mu": {0: "N"}, "logvar": {0: "N"}},
            opset_version=OPSET,
            dynamo=False,
        )
        torch.onnx.export(
            DecoderGraph(vae),
            (example_z,),
            str(paths["decoder"]),
            input_names=["z"],
            output_names=out_names,
            dynamic_axes={"z": {0: "N"}, **{name: {0: "N"} for name in out_names}},
            opset_version=OPSET,
            dynamo=False,
        )
    return paths


def check_parity(vae: VAE, directory: Path, probe: np.ndarray, seed: int = 0) -> float:
    """Largest |ONNX Runtime - PyTorch| over both graphs on `probe` images and prior draws.

    Raises ParityError past PARITY_TOLERANCE.
    """
    options = ort.SessionOptions()
    encoder = ort.InferenceSession(
        str(directory / "encoder.onnx"), options, ["CPUExecutionProvider"]
    )
    decoder = ort.InferenceSession(
        str(directory / "decoder.onnx"), options, ["CPUExecutionProvider"]
    )
    x = probe.astype(np.float32)
    z = (
        np.random.default_rng(seed)
        .standard_normal((len(x), vae.config.latent_dim))
        .astype(np.float32)
    )
    with torch.no_grad():
        torch_encoded = [t.numpy() for t in EncoderGraph(vae)(torch.from_numpy(x))]
        torch_decoded = [t.numpy() for t in DecoderGraph(vae)(torch.from_numpy(z))]
    onnx_encoded = encoder.run(None, {"x": x})
    onnx_decoded = decoder.run(None, {"z": z})
    worst = 0.0
    for ours, theirs in zip(
        torch_encoded + torch_decoded, onnx_encoded + onnx_decoded, strict=True
    ):
        worst = max(worst, float(np.max(np.abs(ours - np.asarray(theirs)))))
    if not worst <= PARITY_TOLERANCE:
        raise ParityError(
            f"ONNX Runtime differs from PyTorch by {worst:.2e} (> {PARITY_TOLERANCE})"
        )
    return worst
