"""The VQ-VAE's recipe: a grid of discrete codes, then a PixelCNN prior fitted to the codes of
the training images; it exports the prior and the codebook beside the two graphs, and its parity
check covers them and the codes the encoder picks."""

from __future__ import annotations

import time
from pathlib import Path
from typing import ClassVar

import numpy as np

from app.datasets.arrays import ImageDataset
from app.repository.kinds import Parity
from app.training.config import TrainConfig
from app.training.data import seed_everything
from app.training.export import export_graphs
from app.training.export_vq import check_vq_parity, export_vq_extras
from app.training.hooks import TrainingHooks
from app.training.kinds.base import KindRecipe
from app.training.modules import VQVAE
from app.training.modules.networks import ImageShape
from app.training.prior import train_prior


class CodeRecipe(KindRecipe[VQVAE]):
    """vqvae."""

    parity: ClassVar[Parity] = "graphs_and_prior"

    def build(self, config: TrainConfig, image: ImageShape, num_classes: int) -> VQVAE:
        return VQVAE(config, image)

    def train_more(
        self, model: VQVAE, config: TrainConfig, train_set: ImageDataset, hooks: TrainingHooks
    ) -> float:
        """Fits the code prior once the encoder and the codebook are fixed."""
        hooks.stage("training prior")
        started = time.monotonic()
        generator = seed_everything(config.seed + 3)
        train_prior(config, model, train_set, generator, hooks.on_progress, hooks.should_stop)
        return time.monotonic() - started

    def export(self, model: VQVAE, directory: Path) -> None:
        export_graphs(model, directory)
        export_vq_extras(model, directory)

    def check_parity(self, model: VQVAE, directory: Path, probe: np.ndarray, seed: int) -> float:
        return check_vq_parity(model, directory, probe, seed)
