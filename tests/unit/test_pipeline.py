"""Training as named stages over one context (app/training/pipeline.py): the stages run in order
and announce the same names as before, each kind's extra work is its recipe's (a VQ-VAE's code
prior, a cvae's label accuracy), a stage whose input is not there says which, and the hooks keep
the transaction's promises."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from app.repository.kinds import model_kind
from app.repository.store import ModelRepository
from app.training.config import TrainConfig
from app.training.context import PublishTarget, TrainingContext
from app.training.data import TrainingData
from app.training.hooks import TrainingCancelled, TrainingHooks
from app.training.kinds import recipe_of
from app.training.manifest import collapse_warning
from app.training.pipeline import export, run_training
from tests.support.synthetic import write_npz

TINY = {"epochs": 1, "eval_k": 5, "hidden": [32], "latent_dim": 4, "quality": False}
TINY_VQ = {
    "kind": "vqvae",
    "epochs": 1,
    "eval_k": 5,
    "num_embeddings": 8,
    "embedding_dim": 2,
    "conv_channels": [4, 8],
    "prior_epochs": 1,
    "prior_channels": 8,
    "prior_layers": 2,
    "quality": False,
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_npz(tmp_path_factory.mktemp("data") / "strokes.npz", 200)


def stages_of(config: dict[str, object], data: Path, root: Path) -> tuple[list[str], object]:
    reached: list[str] = []
    published = run_training(
        TrainConfig.model_validate(config),
        data,
        "strokes",
        ModelRepository(root),
        TrainingHooks(on_stage=reached.append),
    )
    return reached, published.manifest


def test_the_stages_run_in_order_and_announce_their_names(data: Path, tmp_path: Path) -> None:
    reached, _ = stages_of(TINY, data, tmp_path)
    assert reached == ["training", "exporting", "evaluating", "publishing"]


def test_a_vqvae_trains_its_code_prior_as_a_stage_of_its_own(data: Path, tmp_path: Path) -> None:
    reached, manifest = stages_of(TINY_VQ, data, tmp_path)
    assert reached == ["training", "training prior", "exporting", "evaluating", "publishing"]
    assert manifest.codebook_size == 8  # type: ignore[attr-defined]
    assert (tmp_path / "strokes" / "1" / "prior.onnx").is_file()
    assert (tmp_path / "strokes" / "1" / "report" / "samples.png").is_file()


def test_a_conditional_model_is_scored_by_the_labels_its_samples_show(
    data: Path, tmp_path: Path
) -> None:
    config = {**TINY, "kind": "cvae", "quality": True}
    reached, manifest = stages_of(config, data, tmp_path)
    assert reached[-2:] == ["scoring samples", "publishing"]
    assert manifest.classes == ["0", "1", "2", "3"]  # type: ignore[attr-defined]
    quality = manifest.metrics.quality  # type: ignore[attr-defined]
    assert set(quality) == {"classifier_accuracy", "label_accuracy"}


def test_a_stage_run_before_its_input_is_made_says_what_is_missing(
    data: Path, tmp_path: Path
) -> None:
    config = TrainConfig.model_validate(TINY)
    context = TrainingContext(
        config=config,
        data=TrainingData.load(data, config),
        target=PublishTarget("strokes", ModelRepository(tmp_path), "strokes"),
        hooks=TrainingHooks(),
        kind=model_kind("vae"),
        recipe=recipe_of("vae"),
    )
    with pytest.raises(RuntimeError, match="no trained model yet"):
        export(context)


def test_a_stop_asked_for_ends_the_run_at_the_next_stage() -> None:
    hooks = TrainingHooks(should_stop=lambda: True)
    with pytest.raises(TrainingCancelled, match="cancelled before exporting"):
        hooks.stage("exporting")


def test_the_commit_gate_refuses_once_a_cancel_has_claimed_it() -> None:
    with pytest.raises(TrainingCancelled, match="before publishing"):
        TrainingHooks(claim_commit=lambda version: False).claim(1)
    TrainingHooks(claim_commit=lambda version: True).claim(1)


def test_a_commit_that_cannot_be_reported_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def unreachable(version: int) -> None:
        raise ConnectionError("events queue closed")

    with caplog.at_level(logging.ERROR):
        TrainingHooks(on_commit=unreachable).committed("strokes", 3)
    assert "published strokes version 3" in caplog.text


def test_a_collapsed_posterior_is_warned_about() -> None:
    assert collapse_warning(1, 32) is not None and "1 of 32" in str(collapse_warning(1, 32))
    assert collapse_warning(29, 32) is None
