"""What a kind's recipe is: every step of training that depends on the kind, called by the
pipeline without asking which kind it is. The defaults are the two-graph Gaussian family's;
a kind overrides what it does otherwise."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

import numpy as np

from app.datasets.arrays import ImageDataset
from app.evaluation.by_kind import KindGraphs, TorchEvaluator
from app.repository.kinds import Parity
from app.training.config import TrainConfig
from app.training.data import TrainingData
from app.training.export import check_parity, export_graphs
from app.training.hooks import TrainingHooks
from app.training.modules import BaseVAE
from app.training.modules.networks import ImageShape
from app.training.quality import TrainedClassifier, frechet_distance

M = TypeVar("M", bound=BaseVAE)
SAMPLES_SCORED = 2000


@dataclass(frozen=True)
class SampleJudge:
    """What a model's samples are scored with: a classifier trained on the dataset's labels,
    the held-out images x_test, the label values `classes`, and the seed of the draws."""

    classifier: TrainedClassifier
    x_test: np.ndarray
    classes: np.ndarray
    seed: int


class KindRecipe(ABC, Generic[M]):
    """How one trainable kind is built, trained beyond the model's own loop, exported, checked,
    evaluated and described in its manifest."""

    parity: ClassVar[Parity] = "graphs"
    """What `check_parity` checks (the kind's row in app/repository/kinds.py must say the same)."""

    @abstractmethod
    def build(self, config: TrainConfig, image: ImageShape, num_classes: int) -> M:
        """The untrained model `config` describes for images of `image`'s shape."""

    def train_more(
        self, model: M, config: TrainConfig, train_set: ImageDataset, hooks: TrainingHooks
    ) -> float:
        """Training after the model's own loop (a VQ-VAE's code prior); the seconds it took."""
        return 0.0

    def export(self, model: M, directory: Path) -> None:
        """Writes the version's graphs (and whatever else serving loads) into `directory`."""
        export_graphs(model, directory)

    def check_parity(self, model: M, directory: Path, probe: np.ndarray, seed: int) -> float:
        """The largest disagreement of the exported files with PyTorch on `probe`; ParityError
        past the tolerance (then nothing is published)."""
        return check_parity(model, directory, probe, seed)

    def torch_evaluator(self, model: M) -> TorchEvaluator | None:
        """The PyTorch evaluator a kind scored with its model uses (app/evaluation/by_kind)."""
        return None

    def heldout_classes(self, data: TrainingData) -> np.ndarray | None:
        """The class indices the graphs take with the held-out images (None: they take none)."""
        return None

    def manifest_fields(self, model: M, data: TrainingData) -> dict[str, object]:
        """What the manifest says about the model's latent (and its classes)."""
        return {
            "latent_dim": model.latent_size,
            "noise_dim": model.noise_dim,
            **model.manifest_fields(),
        }

    def sample_scores(self, graphs: KindGraphs, judge: SampleJudge) -> dict[str, float]:
        """How good the model's samples look to a classifier trained on the labels: the
        Frechet distance of prior samples to held-out images in its feature space."""
        count = min(SAMPLES_SCORED, len(judge.x_test))
        samples = graphs.prior_samples(count, judge.seed)
        features = judge.classifier.features
        distance = frechet_distance(features(judge.x_test[:count]), features(samples))
        return {"frechet_distance": round(distance, 4)}
