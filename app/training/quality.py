"""Sample quality with nothing downloaded: a small classifier trained here on the dataset's own
labels scores what a model generates.

For a conditional model: how often samples drawn for a label are classified as that label.
Otherwise: the Fréchet distance between held-out images and samples in the classifier's feature
space (an FID whose feature network is trained on the data at hand, so comparable between
models of one dataset, not across datasets).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

FEATURES = 128


class Classifier(nn.Module):
    """A two-layer MLP; its last hidden layer gives the features for the Fréchet distance."""

    def __init__(self, pixels: int, classes: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(pixels, 512), nn.ReLU(), nn.Linear(512, FEATURES), nn.ReLU()
        )
        self.head = nn.Linear(FEATURES, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate activations."""
        out: torch.Tensor = self.body(x.flatten(1))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x))
        return out


@dataclass
class TrainedClassifier:
    """The classifier and its held-out accuracy (a score is only as good as this)."""

    model: Classifier
    accuracy: float

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class indices for images [N,C,H,W] in [0,1]."""
        return self.model(torch.from_numpy(x)).argmax(dim=1).numpy()

    @torch.no_grad()
    def features(self, x: np.ndarray) -> np.ndarray:
        """Feature vectors [N, FEATURES] in float64."""
        return self.model.features(torch.from_numpy(x)).double().numpy()


def train_classifier(
    x: np.ndarray,
    y: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    epochs: int = 3,
    seed: int = 0,
) -> TrainedClassifier:
    """Trains on (x, y) class indices; reports accuracy on (x_test, y_test)."""
    torch.manual_seed(seed)
    classes = int(max(y.max(), y_test.max())) + 1
    model = Classifier(int(np.prod(x.shape[1:])), classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), 128):
            rows = order[start : start + 128]
            loss = F.cross_entropy(model(images[rows]), labels[rows])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    trained = TrainedClassifier(model, 0.0)
    trained.accuracy = float((trained.predict(x_test) == y_test).mean())
    return trained


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between two feature sets."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # Tr((S_a S_b)^(1/2)) is the sum of the square roots of the eigenvalues of S_a S_b, which
    # are real and non-negative for two covariance matrices (up to rounding).
    eigenvalues = np.linalg.eigvals(cov_a @ cov_b).real
    trace_root = float(np.sqrt(np.clip(eigenvalues, 0.0, None)).sum())
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * trace_root)


def label_accuracy(
    classifier: TrainedClassifier, samples: np.ndarray, intended: np.ndarray
) -> float:
    """Share of samples classified as the label they were drawn for."""
    return float((classifier.predict(samples) == intended).mean())
