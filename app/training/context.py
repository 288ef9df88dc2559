"""The one object a training run's stages share (app/training/pipeline.py): what the run was
asked (config, data, where to publish, the caller's hooks), the kind's recipe, and the results
of the stages so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from app.evaluation.by_kind import KindGraphs, Scores
from app.repository.kinds import ModelKind
from app.repository.manifest import Manifest
from app.repository.protocol import Repository
from app.training.config import TrainConfig
from app.training.data import TrainingData
from app.training.hooks import TrainingHooks
from app.training.kinds.base import KindRecipe
from app.training.modules import BaseVAE

T = TypeVar("T")


def reached(value: T | None, what: str) -> T:
    """`value`, which a stage has made by now; RuntimeError naming `what` when it has not."""
    if value is None:
        raise RuntimeError(f"no {what} yet: the stage that makes it has not run")
    return value


@dataclass(frozen=True)
class PublishTarget:
    """Where a run publishes: model `name` in `repository`, its manifest naming the dataset
    `dataset`; DEFAULT moved to it when `make_default`; `owner` (a job id) names the staging."""

    name: str
    repository: Repository
    dataset: str
    make_default: bool = True
    owner: str | None = None


@dataclass
class TrainingContext:
    """One run: its inputs, then each stage's results (None until that stage has run)."""

    config: TrainConfig
    data: TrainingData
    target: PublishTarget
    hooks: TrainingHooks
    kind: ModelKind
    recipe: KindRecipe[Any]
    trained: BaseVAE | None = None
    seconds: float = 0.0
    """Training time, the model's own loop and what its recipe trains after it."""
    epochs_run: float = 0.0
    staging: Path | None = None
    max_abs_err: float | None = None
    graphs: KindGraphs | None = None
    scores: Scores | None = None
    quality: dict[str, float] = field(default_factory=dict)
    manifest: Manifest | None = None

    @property
    def model(self) -> BaseVAE:
        """The trained model (train)."""
        return reached(self.trained, "trained model")

    @property
    def staging_dir(self) -> Path:
        """The directory the version is written in before its commit."""
        return reached(self.staging, "staging directory")

    @property
    def loaded_graphs(self) -> KindGraphs:
        """The exported graphs as the kind scores them (evaluate)."""
        return reached(self.graphs, "loaded graphs")

    @property
    def heldout_classes(self) -> np.ndarray | None:
        """The held-out images' class indices, when the model takes a class."""
        return self.recipe.heldout_classes(self.data)
