"""What a training reports while it runs and writes when it is done: progress within an epoch
from its first step (not only once an epoch or 20 steps have passed), and whole numbers in the
manifest written as integers (older manifests, with 150.0, still read)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import epoch_label
from app.datasets.arrays import make_dataset
from app.repository.manifest import Manifest
from app.training.config import TrainConfig
from app.training.hooks import TrainProgress, report_due
from app.training.trainer import train
from tests.support.synthetic import stroke_digits

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "mnist" / "1" / "manifest.json"


def test_a_short_epoch_reports_progress_before_it_ends() -> None:
    """5 steps an epoch: reported from the first step, not after 20 (two epochs later)."""
    images, _ = stroke_digits(320, size=8)
    config = TrainConfig(epochs=2, batch_size=64, hidden=[16], latent_dim=2)
    seen: list[TrainProgress] = []
    train(config, make_dataset(images), on_progress=seen.append)
    first_epoch = [(p.epoch_step, p.epoch_steps) for p in seen if p.epoch == 1]
    assert first_epoch[0] == (1, 5)
    assert [step for step, _ in first_epoch] == sorted(step for step, _ in first_epoch)
    assert first_epoch[-1] == (5, 5)
    assert seen[-1].step == seen[-1].steps == 10


@pytest.mark.parametrize(
    ("epoch_step", "epoch_steps", "due"),
    [(1, 391, True), (2, 391, False), (20, 391, True), (391, 391, True), (3, 30, True)],
)
def test_progress_is_due_often_enough_within_an_epoch(
    epoch_step: int, epoch_steps: int, due: bool
) -> None:
    assert report_due(epoch_step, epoch_steps, every=20) is due


def test_the_cli_label_shows_the_epoch_and_how_far_into_it() -> None:
    progress = TrainProgress(
        epoch=3, epochs=150, step=900, steps=58650, loss=1.0, reconstruction=1.0, kl=0.0,
        kl_weight=1.0, samples_per_second=1.0, eta_seconds=1.0, epoch_step=118, epoch_steps=391,
    )  # fmt: skip
    assert epoch_label(progress) == "3/150  30%"


def test_a_count_of_held_out_images_is_an_int() -> None:
    assert json.loads(TrainConfig(holdout=10000.0).model_dump_json())["holdout"] == 10000
    assert json.loads(TrainConfig(holdout=0.1).model_dump_json())["holdout"] == 0.1


def test_whole_epochs_are_an_int_and_old_manifests_still_read() -> None:
    old = json.loads(SHIPPED.read_text())
    assert old["training"]["epochs_run"] == 150.0  # as it was written
    manifest = Manifest.model_validate(old)
    assert '"epochs_run":150,' in manifest.model_dump_json()
    old["training"]["epochs_run"] = 2.5  # stopped within an epoch (max_seconds)
    assert Manifest.model_validate(old).training.epochs_run == 2.5  # type: ignore[union-attr]
