"""ONNX export of the encoder and decoder graphs, and the parity gate that guards publishing."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from app.training.modules import BaseVAE

PARITY_TOLERANCE = 1e-4
OPSET = 17


class ParityError(RuntimeError):
    """ONNX Runtime disagrees with PyTorch beyond the tolerance: the version must not publish."""


class GraphModule(nn.Module):
    """One of a model's graph methods (`graph_encode` or `graph_decode`) as the module that
    torch.onnx exports and the parity gate runs: the model stays registered, so its parameters
    become the graph's initializers."""

    def __init__(self, vae: BaseVAE, method: str) -> None:
        super().__init__()
        self.vae = vae
        self.method = method

    def forward(
        self, inputs: torch.Tensor, y: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        graph: Callable[..., tuple[torch.Tensor, ...]] = getattr(self.vae, self.method)
        return graph(inputs, y)


def encoder_graph(vae: BaseVAE) -> GraphModule:
    """x [N,C,H,W] in [0,1] (+ y int64 [N]) -> mu, logvar [N,D] (+ the hvae's lower layer)."""
    return GraphModule(vae, "graph_encode")


def decoder_graph(vae: BaseVAE) -> GraphModule:
    """z [N, D + noise] (+ y) -> x_mean [N,C,H,W] in [0,1] and logits or x_logscale."""
    return GraphModule(vae, "graph_decode")


def decoder_outputs(likelihood: str) -> list[str]:
    """Names of the decoder graph's outputs for a likelihood."""
    return ["x_mean", "logits" if likelihood == "bernoulli" else "x_logscale"]


def export_graphs(vae: BaseVAE, directory: Path) -> dict[str, Path]:
    """Writes encoder.onnx and decoder.onnx with a dynamic batch axis into `directory`."""
    vae.eval()
    channels, height, width = vae.image
    example_x = torch.rand(2, channels, height, width)
    example_z = torch.randn(2, vae.latent_size + vae.noise_dim)
    label: tuple[torch.Tensor, ...] = (
        (torch.zeros(2, dtype=torch.int64),) if vae.conditional else ()
    )
    labelled = ["y"] if vae.conditional else []
    paths = {"encoder": directory / "encoder.onnx", "decoder": directory / "decoder.onnx"}
    out_names = decoder_outputs(vae.likelihood)
    enc_names = vae.encoder_outputs()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated but needs no extra packages and handles these
        # plain feed-forward graphs exactly; the parity gate below checks the result either way.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder_graph(vae),
            (example_x, *label),
            str(paths["encoder"]),
            input_names=["x", *labelled],
            output_names=enc_names,
            dynamic_axes={name: {0: "N"} for name in ["x", *labelled, *enc_names]},
            opset_version=OPSET,
            dynamo=False,
        )
        torch.onnx.export(
            decoder_graph(vae),
            (example_z, *label),
            str(paths["decoder"]),
            input_names=["z", *labelled],
            output_names=out_names,
            dynamic_axes={name: {0: "N"} for name in ["z", *labelled, *out_names]},
            opset_version=OPSET,
            dynamo=False,
        )
    return paths


def check_parity(vae: BaseVAE, directory: Path, probe: np.ndarray, seed: int = 0) -> float:
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
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((len(x), vae.latent_size + vae.noise_dim)).astype(np.float32)
    y = rng.integers(0, max(1, vae.num_classes), len(x)).astype(np.int64)
    extra = {"y": y} if vae.conditional else {}
    torch_y = torch.from_numpy(y) if vae.conditional else None
    with torch.no_grad():
        torch_encoded = [t.numpy() for t in encoder_graph(vae)(torch.from_numpy(x), torch_y)]
        torch_decoded = [t.numpy() for t in decoder_graph(vae)(torch.from_numpy(z), torch_y)]
    onnx_encoded = encoder.run(None, {"x": x, **extra})
    onnx_decoded = decoder.run(None, {"z": z, **extra})
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
