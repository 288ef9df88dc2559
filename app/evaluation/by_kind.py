"""A version's graphs loaded as its kind is scored (the row's `evaluator` in
app/repository/kinds.py picks the loader): the training pipeline (the manifest's metrics and
report) and `vae evaluate` call the same `KindGraphs` without asking which kind it is, so both
report the same quantity for every kind. Torch-free: a kind whose bound needs its PyTorch model
(the ladder VAE's log-weights need p(z1|z2) and q(z1|z2,x)) gets its evaluator from the caller."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.arrays import FloatArray
from app.evaluation.gaussian import Evaluation, OnnxVAE, evaluate
from app.evaluation.vq import OnnxVQVAE, evaluate_vq
from app.repository.kinds import Evaluator, ModelKind
from app.repository.manifest import VQMetrics

TorchEvaluator = Callable[[FloatArray, int, int], Evaluation]
"""(images, k, seed) -> metrics, from the PyTorch model."""
TorchEvaluatorSource = Callable[[], TorchEvaluator | None]
"""Makes the PyTorch evaluator when a kind needs one (None: torch is not installed)."""
Scores = Evaluation | VQMetrics


@dataclass(frozen=True)
class HeldOut:
    """What a version is scored on: images x (binarized already for a Bernoulli model), class
    indices y for a conditional one, k importance samples and the seed of their draws."""

    x: FloatArray
    k: int
    seed: int = 0
    y: np.ndarray | None = None
    commitment_cost: float = 0.25


class KindGraphs(ABC):
    """A version's graphs with what its kind does with them."""

    graphs: OnnxVAE
    """The encoder and decoder (the report draws with them)."""

    @abstractmethod
    def evaluate(self, held_out: HeldOut) -> Scores:
        """The metrics the manifest reports for the images held out."""

    @abstractmethod
    def prior_samples(self, n: int, seed: int, y: np.ndarray | None = None) -> FloatArray:
        """n images decoded from draws of the model's prior (of the classes y [n] for a
        conditional model)."""

    def report_samples(self, n: int, seed: int) -> FloatArray | None:
        """The report's samples when the prior is not N(0, I); None: the report draws them."""
        return None


class GaussianGraphs(KindGraphs):
    """One Gaussian latent (or a ladder): the IWAE bound from the two graphs."""

    def __init__(self, graphs: OnnxVAE) -> None:
        self.graphs = graphs

    def evaluate(self, held_out: HeldOut) -> Scores:
        return evaluate(self.graphs, held_out.x, k=held_out.k, seed=held_out.seed, y=held_out.y)

    def prior_samples(self, n: int, seed: int, y: np.ndarray | None = None) -> FloatArray:
        """z ~ N(0, I) over every decoder input (a ladder's lower-layer noise too)."""
        width = self.graphs.decoder.input_width
        if width is None:
            raise ValueError("the decoder graph declares no latent width to draw")
        z = np.random.default_rng(seed).standard_normal((n, width)).astype(np.float32)
        return self.graphs.decode(z, y)


class TorchScoredGraphs(GaussianGraphs):
    """Graphs whose bound needs the PyTorch model: scored by the evaluator the caller gives."""

    def __init__(
        self, kind: ModelKind, graphs: OnnxVAE, torch_evaluator: TorchEvaluator | None
    ) -> None:
        super().__init__(graphs)
        self.kind = kind
        self.torch_evaluator = torch_evaluator

    def evaluate(self, held_out: HeldOut) -> Scores:
        if self.torch_evaluator is None:
            raise RuntimeError(
                f"a {self.kind.name}'s bound needs its PyTorch model (the graphs do not give its "
                "log-weights): install the training extras, pip install -e '.[train]'"
            )
        return self.torch_evaluator(held_out.x, held_out.k, held_out.seed)


class CodeGraphs(KindGraphs):
    """A VQ-VAE: the ELBO with its learned code prior, which also draws its samples."""

    def __init__(self, graphs: OnnxVQVAE) -> None:
        self.graphs: OnnxVQVAE = graphs

    def evaluate(self, held_out: HeldOut) -> Scores:
        return evaluate_vq(self.graphs, held_out.x, held_out.commitment_cost)

    def prior_samples(self, n: int, seed: int, y: np.ndarray | None = None) -> FloatArray:
        return self.graphs.sample(n, seed)

    def report_samples(self, n: int, seed: int) -> FloatArray | None:
        return self.graphs.sample(n, seed)


Loader = Callable[[ModelKind, Path, str, TorchEvaluatorSource], KindGraphs]


def _not_evaluated(kind: ModelKind, *_: object) -> KindGraphs:
    raise ValueError(f"a {kind.name} is not evaluated: its versions have no likelihood to score")


LOADERS: dict[Evaluator, Loader] = {
    "onnx": lambda _, directory, likelihood, __: GaussianGraphs(
        OnnxVAE.load(directory, likelihood)
    ),
    "torch": lambda kind, directory, likelihood, source: TorchScoredGraphs(
        kind, OnnxVAE.load(directory, likelihood), source()
    ),
    "vq": lambda _, directory, likelihood, __: CodeGraphs(OnnxVQVAE.load(directory, likelihood)),
    "none": _not_evaluated,
}
"""One loader for every value of a kind row's `evaluator`."""


def load_graphs(
    kind: ModelKind,
    directory: Path,
    likelihood: str,
    torch_evaluator: TorchEvaluatorSource = lambda: None,
) -> KindGraphs:
    """A version's graphs (from its directory, or a staging one) as `kind` scores them;
    `torch_evaluator` is asked only by a kind scored with its PyTorch model."""
    return LOADERS[kind.evaluator](kind, directory, likelihood, torch_evaluator)
