"""The recipes of the Gaussian kinds: vae (one latent layer), cvae (conditioned on a label)
and hvae (a two-layer ladder, scored with its PyTorch model). All export the encoder and decoder
graphs and are checked against PyTorch on them."""

from __future__ import annotations

from functools import partial

import numpy as np

from app.evaluation.by_kind import KindGraphs, TorchEvaluator
from app.training.config import TrainConfig
from app.training.data import TrainingData, class_index
from app.training.evaluate_torch import evaluate_torch
from app.training.kinds.base import KindRecipe, SampleJudge
from app.training.modules import VAE, GaussianVAE, LadderVAE
from app.training.modules.networks import ImageShape
from app.training.quality import label_accuracy

SAMPLES_PER_CLASS = 100


class GaussianRecipe(KindRecipe[GaussianVAE]):
    """A model with Gaussian latents; its importance weights give the IWAE bound in PyTorch."""

    def torch_evaluator(self, model: GaussianVAE) -> TorchEvaluator | None:
        return partial(evaluate_torch, model)


class VAERecipe(GaussianRecipe):
    """vae: one Gaussian latent layer."""

    def build(self, config: TrainConfig, image: ImageShape, num_classes: int) -> GaussianVAE:
        return VAE(config, image)


class LadderRecipe(GaussianRecipe):
    """hvae: two Gaussian latent layers."""

    def build(self, config: TrainConfig, image: ImageShape, num_classes: int) -> GaussianVAE:
        return LadderVAE(config, image)


class ConditionalRecipe(GaussianRecipe):
    """cvae: encoder and decoder take the class; its samples are scored by whether they show
    the class they were drawn for."""

    def build(self, config: TrainConfig, image: ImageShape, num_classes: int) -> GaussianVAE:
        if num_classes < 2:
            raise ValueError("a conditional VAE needs a dataset with at least two labels")
        return VAE(config, image, num_classes)

    def heldout_classes(self, data: TrainingData) -> np.ndarray | None:
        labels = data.heldout.labels
        return None if labels is None or data.classes is None else class_index(labels, data.classes)

    def manifest_fields(self, model: GaussianVAE, data: TrainingData) -> dict[str, object]:
        values = [] if data.classes is None else [int(c) for c in data.classes]
        return {
            **super().manifest_fields(model, data),
            "classes": data.class_names,
            "label_values": values,
        }

    def sample_scores(self, graphs: KindGraphs, judge: SampleJudge) -> dict[str, float]:
        """The share of samples the classifier sees as the class they were drawn for."""
        intended = np.repeat(np.arange(len(judge.classes)), SAMPLES_PER_CLASS)
        samples = graphs.prior_samples(len(intended), judge.seed, intended)
        return {"label_accuracy": round(label_accuracy(judge.classifier, samples, intended), 4)}
