"""ONNX export of the encoder and decoder graphs, and the parity gate that guards publishing."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from app.runtime.sessions import cpu_session
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


def export_onnx(
    module: nn.Module,
    args: tuple[torch.Tensor, ...],
    path: Path,
    inputs: list[str],
    outputs: list[str],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
) -> None:
    """Writes `module`, traced on `args`, to `path` as an ONNX graph (opset OPSET) with the named
    inputs and outputs; the axes of `dynamic_axes` (by name; by default the batch axis of every
    input and output) stay dynamic."""
    if dynamic_axes is None:
        dynamic_axes = {name: {0: "N"} for name in [*inputs, *outputs]}
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter is deprecated but needs no extra packages and handles these
        # plain feed-forward graphs exactly; the parity gates check the result either way.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=dynamic_axes,
            opset_version=OPSET,
            dynamo=False,
        )


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
    encoder_io, decoder_io = (["x", *labelled], enc_names), (["z", *labelled], out_names)
    export_onnx(encoder_graph(vae), (example_x, *label), paths["encoder"], *encoder_io)
    export_onnx(decoder_graph(vae), (example_z, *label), paths["decoder"], *decoder_io)
    return paths


def parity_error(ours: np.ndarray, theirs: np.ndarray) -> float:
    """The largest difference between two outputs, scaled by 1 + |value|: absolute for values
    within about 1 (means, images), relative for large ones (logits of 30 carry float32 rounding
    of about 1e-5 after a 512-wide layer; the two-layer MNIST model's reached 1.05e-4 absolute)."""
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return float(np.max(np.abs(ours - theirs) / (1.0 + np.abs(ours)), initial=0.0))


def check_parity(vae: BaseVAE, directory: Path, probe: np.ndarray, seed: int = 0) -> float:
    """Largest `parity_error` of ONNX Runtime against PyTorch over both graphs on `probe`
    images and prior draws.

    Raises ParityError past PARITY_TOLERANCE.
    """
    encoder = cpu_session(directory / "encoder.onnx")
    decoder = cpu_session(directory / "decoder.onnx")
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
        worst = max(worst, parity_error(ours, theirs))
    if not worst <= PARITY_TOLERANCE:
        raise ParityError(
            f"ONNX Runtime differs from PyTorch by {worst:.2e} (> {PARITY_TOLERANCE})"
        )
    return worst
