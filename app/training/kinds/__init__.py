"""The torch half of the model-kind table (the torch-free half is app/repository/kinds.py): one
recipe per trainable kind, keyed by the same names. `_check_covers_every_kind` fails at import
when a trainable kind has no recipe here, or a recipe checks other files than its row says."""

from __future__ import annotations

from typing import Any

from app.repository.kinds import KINDS
from app.training.config import TrainConfig
from app.training.kinds.base import KindRecipe
from app.training.kinds.gaussian import ConditionalRecipe, LadderRecipe, VAERecipe
from app.training.kinds.vq import CodeRecipe
from app.training.modules import BaseVAE
from app.training.modules.networks import ImageShape

RECIPES: dict[str, KindRecipe[Any]] = {
    "vae": VAERecipe(),
    "cvae": ConditionalRecipe(),
    "hvae": LadderRecipe(),
    "vqvae": CodeRecipe(),
}


def _check_covers_every_kind() -> None:
    """Both halves of the table name the same kinds, and the parity checks agree."""
    trainable = {name for name, kind in KINDS.items() if kind.trainable}
    if set(RECIPES) != trainable:
        raise RuntimeError(
            f"app/training/kinds covers {sorted(RECIPES)}, "
            f"app/repository/kinds.py lists {sorted(trainable)} as trainable"
        )
    for name, recipe in RECIPES.items():
        if recipe.parity != KINDS[name].parity:
            raise RuntimeError(f"kind {name}: its parity check is not the one its row says")


_check_covers_every_kind()


def recipe_of(kind: str) -> KindRecipe[Any]:
    """The recipe of a trainable kind; KeyError names the trainable kinds."""
    try:
        return RECIPES[kind]
    except KeyError:
        raise KeyError(f"kind {kind!r} is not trained here: one of {', '.join(RECIPES)}") from None


def build_model(config: TrainConfig, image: ImageShape, num_classes: int = 0) -> BaseVAE:
    """The model a config describes: vae, cvae (needs num_classes > 1), hvae or vqvae."""
    model: BaseVAE = recipe_of(config.kind).build(config, image, num_classes)
    return model
