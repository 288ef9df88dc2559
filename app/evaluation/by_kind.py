"""Held-out metrics of a version as its kind's row says (app/repository/kinds.py): the same
dispatch for the training pipeline (the manifest's metrics) and `vae evaluate`, so both report
the same quantity for every kind. Torch-free: a kind evaluated with PyTorch gets its evaluator
from the caller."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.arrays import FloatArray
from app.evaluation.gaussian import Evaluation, OnnxVAE, evaluate
from app.evaluation.vq import OnnxVQVAE, evaluate_vq
from app.repository.kinds import ModelKind
from app.repository.manifest import VQMetrics

TorchEvaluator = Callable[[FloatArray, int, int], Evaluation]
"""(images, k, seed) -> metrics, from the PyTorch model."""


def load_graphs(kind: ModelKind, directory: Path, likelihood: str) -> OnnxVAE:
    """A version's graphs, with its code prior and codebook for a kind that has them."""
    return (OnnxVQVAE if kind.has_code_prior else OnnxVAE).load(directory, likelihood)


def evaluate_kind(
    kind: ModelKind,
    graphs: OnnxVAE,
    x: FloatArray,
    *,
    k: int,
    seed: int = 0,
    y: np.ndarray | None = None,
    commitment_cost: float = 0.25,
    torch_evaluator: TorchEvaluator | None = None,
) -> Evaluation | VQMetrics:
    """The metrics of images x (binarized already for a Bernoulli model; class indices y for a
    conditional one): the IWAE bound from the graphs (onnx), from PyTorch (torch), or the VQ
    ELBO with the learned code prior (vq)."""
    if kind.evaluator == "vq":
        if not isinstance(graphs, OnnxVQVAE):
            raise TypeError(
                f"a {kind.name} is evaluated with its code prior: load it with load_graphs"
            )
        return evaluate_vq(graphs, x, commitment_cost)
    if kind.evaluator == "torch":
        if torch_evaluator is None:
            raise RuntimeError(
                f"a {kind.name}'s bound needs its PyTorch model (the graphs do not give its "
                "log-weights): install the training extras, pip install -e '.[train]'"
            )
        return torch_evaluator(x, k, seed)
    return evaluate(graphs, x, k=k, seed=seed, y=y)
