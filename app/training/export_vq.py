"""A VQ-VAE's extra files (prior.onnx, codebook.npy) and its parity gate.

prior.onnx: codes int64 [N,H,W] -> logits [N,K,H,W], every axis dynamic (the sampler may run it
on the rows decided so far). codebook.npy: float32 [K,D], which turns code indices into decoder
inputs in the API.

Parity for the quantizing graphs: the code of a vector is an argmin, so z_e within 1e-6 of
PyTorch's can still land on the other code when two codes are (almost) equally near. The gate
therefore accepts a differing code only where PyTorch's own distances call it a tie, and checks
the decoder on codebook vectors (the inputs /decode, /sample and the codes path give it), where
the nearest code is never in doubt.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from app.runtime.sessions import load_graph
from app.training.export import (
    OPSET,
    PARITY_TOLERANCE,
    ParityError,
    decoder_graph,
    encoder_graph,
    parity_error,
)
from app.training.modules import VQVAE

PRIOR_FILE = "prior.onnx"
CODEBOOK_FILE = "codebook.npy"
# Two codes whose squared distances to z_e differ by less than this share (of ||z_e||^2 + 1)
# are a tie, on which PyTorch and ONNX Runtime may choose differently.
TIE_TOLERANCE = 1e-5


class PriorGraph(nn.Module):
    """codes int64 [N,H,W] -> logits [N,K,H,W]."""

    def __init__(self, model: VQVAE) -> None:
        super().__init__()
        self.prior = model.prior

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.prior(codes)
        return out


def export_vq_extras(model: VQVAE, directory: Path) -> dict[str, Path]:
    """Writes prior.onnx and codebook.npy into `directory`."""
    model.eval()
    paths = {"prior": directory / PRIOR_FILE, "codebook": directory / CODEBOOK_FILE}
    example = torch.zeros(2, *model.grid, dtype=torch.int64)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            PriorGraph(model),
            (example,),
            str(paths["prior"]),
            input_names=["codes"],
            output_names=["logits"],
            dynamic_axes={"codes": {0: "N", 1: "H", 2: "W"}, "logits": {0: "N", 2: "H", 3: "W"}},
            opset_version=OPSET,
            dynamo=False,
        )
    np.save(paths["codebook"], model.quantizer.codebook.detach().numpy().astype(np.float32))
    return paths


def _worst(ours: list[np.ndarray], theirs: list[np.ndarray]) -> float:
    return max(parity_error(a, b) for a, b in zip(ours, theirs, strict=True))


def _check_codes(model: VQVAE, z_e: torch.Tensor, ours: np.ndarray, theirs: np.ndarray) -> int:
    """Raises ParityError unless every differing code is a tie in PyTorch's distances;
    returns how many differ."""
    differ = np.argwhere(ours != theirs)
    if len(differ) == 0:
        return 0
    codebook = model.quantizer.codebook.double()
    for n, i, j in differ:
        vector = z_e[n, :, i, j].double()
        d_ours = float((vector - codebook[int(ours[n, i, j])]).pow(2).sum())
        d_theirs = float((vector - codebook[int(theirs[n, i, j])]).pow(2).sum())
        if abs(d_theirs - d_ours) > TIE_TOLERANCE * (1.0 + float(vector.pow(2).sum())):
            raise ParityError(
                f"ONNX Runtime chose code {theirs[n, i, j]} where PyTorch chose {ours[n, i, j]} "
                f"and they are not a tie ({d_theirs:.6g} vs {d_ours:.6g})"
            )
    return len(differ)


def check_vq_parity(model: VQVAE, directory: Path, probe: np.ndarray, seed: int = 0) -> float:
    """Largest |ONNX Runtime - PyTorch| over the encoder's z_e, the decoder on codebook
    vectors (the probe's codes and random ones) and the prior (whole and cropped grids).

    Raises ParityError past PARITY_TOLERANCE or on a code that differs without a tie."""
    model.eval()
    encoder = load_graph(directory / "encoder.onnx", 1)
    decoder = load_graph(directory / "decoder.onnx", 1)
    prior = load_graph(directory / PRIOR_FILE, 1)
    x = probe.astype(np.float32)
    rng = np.random.default_rng(seed)
    h, w = model.grid
    random_codes = rng.integers(0, model.config.num_embeddings, (len(x), h, w))
    with torch.no_grad():
        z_e, codes = encoder_graph(model)(torch.from_numpy(x))
        all_codes = torch.cat([codes, torch.from_numpy(random_codes)])
        z_q = model.quantizer.lookup(all_codes).flatten(1)
        torch_decoded = [t.numpy() for t in decoder_graph(model)(z_q)]
        torch_prior = model.prior(all_codes).numpy()
        torch_cropped = model.prior(all_codes[:, : max(1, h // 2)]).numpy()
    onnx_encoded = encoder.run(x)
    _check_codes(model, z_e, codes.numpy(), onnx_encoded["codes"])
    onnx_decoded = decoder.run(z_q.numpy())
    feeds = all_codes.numpy().astype(np.int64)
    onnx_prior = prior.run_feeds({"codes": feeds})["logits"]
    onnx_cropped = prior.run_feeds({"codes": feeds[:, : max(1, h // 2)]})["logits"]
    worst = _worst(
        [z_e.numpy(), *torch_decoded, torch_prior, torch_cropped],
        [
            onnx_encoded["z_e"],
            onnx_decoded["x_mean"],
            onnx_decoded[decoder.output_names[1]],
            onnx_prior,
            onnx_cropped,
        ],
    )
    if not worst <= PARITY_TOLERANCE:
        raise ParityError(
            f"ONNX Runtime differs from PyTorch by {worst:.2e} (> {PARITY_TOLERANCE})"
        )
    return worst
