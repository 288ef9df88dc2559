"""The torch half of the model-kind table (the torch-free half is app/repository/kinds.py): for
each kind, the model class it builds, what it exports and how the export is checked against
PyTorch. Keyed by the same names; `_check_covers_every_kind` fails at import when a kind is
missing here or unknown there."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.repository.kinds import KINDS, ModelKind, model_kind
from app.training.config import TrainConfig
from app.training.export import check_parity, export_graphs
from app.training.export_vq import check_vq_parity, export_vq_extras
from app.training.modules import VAE, VQVAE, BaseVAE, LadderVAE
from app.training.modules.networks import ImageShape

Builder = Callable[[TrainConfig, ImageShape, int], BaseVAE]


@dataclass(frozen=True)
class TrainingKind:
    """How one kind is built, exported and checked."""

    build: Builder
    export: Callable[[BaseVAE, Path], None]
    check_parity: Callable[[BaseVAE, Path, np.ndarray, int], float]


def _conditional_vae(config: TrainConfig, image: ImageShape, num_classes: int) -> BaseVAE:
    if num_classes < 2:
        raise ValueError("a conditional VAE needs a dataset with at least two labels")
    return VAE(config, image, num_classes)


def _export_gaussian(model: BaseVAE, directory: Path) -> None:
    export_graphs(model, directory)


def _export_vq(model: BaseVAE, directory: Path) -> None:
    assert isinstance(model, VQVAE)
    export_graphs(model, directory)
    export_vq_extras(model, directory)


def _check_vq(model: BaseVAE, directory: Path, probe: np.ndarray, seed: int) -> float:
    assert isinstance(model, VQVAE)
    return check_vq_parity(model, directory, probe, seed)


TRAINING_KINDS: dict[str, TrainingKind] = {
    "vae": TrainingKind(
        build=lambda config, image, _: VAE(config, image),
        export=_export_gaussian,
        check_parity=check_parity,
    ),
    "cvae": TrainingKind(
        build=_conditional_vae, export=_export_gaussian, check_parity=check_parity
    ),
    "hvae": TrainingKind(
        build=lambda config, image, _: LadderVAE(config, image),
        export=_export_gaussian,
        check_parity=check_parity,
    ),
    "vqvae": TrainingKind(
        build=lambda config, image, _: VQVAE(config, image),
        export=_export_vq,
        check_parity=_check_vq,
    ),
}


def _check_covers_every_kind() -> None:
    """Both halves of the table name the same kinds, and the parity checks agree."""
    trainable = {name for name, kind in KINDS.items() if kind.trainable}
    if set(TRAINING_KINDS) != trainable:
        raise RuntimeError(
            f"app/training/kinds.py covers {sorted(TRAINING_KINDS)}, "
            f"app/repository/kinds.py lists {sorted(KINDS)}"
        )
    for name in TRAINING_KINDS:
        kind = KINDS[name]
        vq_checked = TRAINING_KINDS[name].check_parity is _check_vq
        if vq_checked != (kind.parity == "graphs_and_prior"):
            raise RuntimeError(f"kind {name}: its parity check is not the one its row says")


_check_covers_every_kind()


def training_kind(name: str) -> tuple[ModelKind, TrainingKind]:
    """Both rows of a kind."""
    return model_kind(name), TRAINING_KINDS[name]


def build_model(config: TrainConfig, image: ImageShape, num_classes: int = 0) -> BaseVAE:
    """The model a config describes: vae, cvae (needs num_classes > 1), hvae or vqvae."""
    return TRAINING_KINDS[config.kind].build(config, image, num_classes)
