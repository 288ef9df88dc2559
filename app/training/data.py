"""A run's data: the dataset file read and hashed once, split into what training sees and what
evaluation scores, with its classes; and the seeding that makes a run repeatable."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from app.arrays import FloatArray
from app.datasets.arrays import ImageDataset, binarize, load_arrays
from app.storage.files import sha256_of
from app.training.config import TrainConfig


def seed_everything(seed: int) -> torch.Generator:
    """Seeds Python, numpy and torch; returns a torch generator for data order and binarization."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def class_index(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Dataset label values -> indices 0..K-1 into `classes` (the sorted distinct values)."""
    return np.searchsorted(classes, labels).astype(np.int64)


def heldout_images(config: TrainConfig, heldout: ImageDataset) -> FloatArray:
    """The images evaluation scores: binarized once with a fixed seed for a Bernoulli model,
    so every version of a model is scored on the same binary digits."""
    x = heldout.as_float()
    if config.eval_images is not None:
        x = x[: config.eval_images]
    if config.likelihood == "bernoulli":
        x = binarize(x, np.random.default_rng(config.seed + 1))
    return x


@dataclass(frozen=True)
class TrainingData:
    """The dataset of one run: `path` and its `sha256` (taken when the run starts: the dataset
    may be deleted while it trains), the training and held-out splits, and the sorted distinct
    label values (None for an unlabelled dataset)."""

    path: Path
    sha256: str
    train_set: ImageDataset
    heldout: ImageDataset
    classes: np.ndarray | None

    @classmethod
    def load(cls, path: Path, config: TrainConfig) -> TrainingData:
        """Reads, hashes and splits the file at `path` as `config` says (a seeded split)."""
        data = load_arrays(path)
        sha256 = sha256_of(path)
        train_set, heldout = data.split(config.holdout_count(len(data)), seed=config.seed)
        classes = None if data.labels is None else np.unique(data.labels)
        return cls(path, sha256, train_set, heldout, classes)

    @property
    def shape(self) -> tuple[int, int, int]:
        """An image's (channels, height, width)."""
        return self.train_set.shape

    @property
    def class_names(self) -> list[str]:
        """The label values as the manifest names them."""
        return [] if self.classes is None else [str(c) for c in self.classes]
