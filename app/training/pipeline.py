"""From a dataset file to a published model version, in named stages over one context
(app/training/context.py): train, export, check, evaluate, report, publish. Whatever depends on
the model's kind is its recipe's (app/training/kinds). `vae train` and training jobs both run
this."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from app.evaluation.by_kind import HeldOut, load_graphs
from app.evaluation.report import write_report
from app.repository.kinds import model_kind
from app.repository.manifest import Manifest
from app.repository.protocol import Repository
from app.training import trainer
from app.training.config import TrainConfig
from app.training.context import PublishTarget, TrainingContext, reached
from app.training.data import TrainingData, class_index, heldout_images
from app.training.hooks import TrainingHooks
from app.training.kinds import recipe_of
from app.training.kinds.base import SampleJudge
from app.training.manifest import build_manifest
from app.training.quality import train_classifier
from app.training.weights import WEIGHTS_FILE, round_to_stored_precision, save_weights

PARITY_PROBE = 256  # held-out images the exported graphs are checked on
REPORT_SAMPLES = 64
CLASSIFIER_IMAGES = 60000  # the whole of an MNIST-sized training set: 98% held-out accuracy


@dataclass(frozen=True)
class Published:
    """What a finished run published; `default_error` when DEFAULT could not be moved to it
    (the version is published all the same)."""

    name: str
    version: int
    manifest: Manifest
    default_error: str | None = None


def train(context: TrainingContext) -> None:
    """Trains the model, then whatever its recipe trains after it (a VQ-VAE's code prior)."""
    context.hooks.stage("training")
    config, hooks, train_set = context.config, context.hooks, context.data.train_set
    outcome = trainer.train(
        config,
        train_set,
        on_progress=hooks.on_progress,
        should_stop=hooks.should_stop,
        classes=context.data.classes,
    )
    context.trained = outcome.model
    context.epochs_run = outcome.epochs_run
    context.seconds = outcome.seconds
    context.seconds += context.recipe.train_more(outcome.model, config, train_set, hooks)


def export(context: TrainingContext) -> None:
    """Writes the graphs and the weights (rounded to their stored precision first, so the
    graphs are what the weights give) into the staging directory."""
    context.hooks.stage("exporting")
    model, staging = context.model, context.staging_dir
    round_to_stored_precision(model)
    context.recipe.export(model, staging)
    save_weights(model.state_dict(), staging / WEIGHTS_FILE, context.config.model_dump_json())


def check(context: TrainingContext) -> None:
    """The parity gate: ONNX Runtime against PyTorch on held-out images (ParityError past the
    tolerance, and nothing is published)."""
    context.hooks.check("checking")
    probe = context.data.heldout.as_float()[:PARITY_PROBE]
    context.max_abs_err = context.recipe.check_parity(
        context.model, context.staging_dir, probe, context.config.seed
    )


def evaluate(context: TrainingContext) -> None:
    """Scores the exported graphs on the held-out images, as the kind is scored."""
    context.hooks.stage("evaluating")
    config, model, recipe = context.config, context.model, context.recipe
    graphs = load_graphs(
        context.kind, context.staging_dir, config.likelihood, lambda: recipe.torch_evaluator(model)
    )
    x = heldout_images(config, context.data.heldout)
    y = context.heldout_classes
    context.graphs = graphs
    context.scores = graphs.evaluate(
        HeldOut(
            x,
            k=config.eval_k,
            seed=config.seed,
            y=None if y is None else y[: len(x)],
            commitment_cost=config.commitment_cost,
        )
    )


def report(context: TrainingContext) -> None:
    """Draws the report figures; scores the samples with a classifier when asked and the
    dataset has two labels or more."""
    context.hooks.check("reporting")
    config, data, graphs = context.config, context.data, context.loaded_graphs
    write_report(
        graphs.graphs,
        data.heldout.as_float(),
        data.heldout.labels,
        config.latent_dim,
        context.staging_dir / "report",
        config.seed,
        context.heldout_classes,
        samples=graphs.report_samples(REPORT_SAMPLES, config.seed),
    )
    if config.quality and data.classes is not None and len(data.classes) > 1:
        context.hooks.stage("scoring samples")
        context.quality = score_samples(context, data.classes)


def score_samples(context: TrainingContext, classes: np.ndarray) -> dict[str, float]:
    """Trains a classifier on the labels and scores samples with it (app/training/quality)."""
    config, train_set, heldout = context.config, context.data.train_set, context.data.heldout
    assert train_set.labels is not None and heldout.labels is not None
    limit = CLASSIFIER_IMAGES
    x_train = train_set.as_float()[:limit]
    y_train = class_index(train_set.labels[:limit], classes)
    x_test, y_test = heldout.as_float()[:limit], class_index(heldout.labels[:limit], classes)
    classifier = train_classifier(x_train, y_train, x_test, y_test, seed=config.seed)
    scores = {"classifier_accuracy": round(classifier.accuracy, 4)}
    judge = SampleJudge(classifier, x_test, classes, config.seed + 2)
    samples = context.recipe.sample_scores(context.loaded_graphs, judge)
    return {**scores, **samples}


def publish(context: TrainingContext) -> int:
    """Writes the manifest and commits the version: the commit gate is claimed right before
    the commit point, naming the version (TrainingCancelled when a cancel claimed it first).
    Its number."""
    context.manifest = build_manifest(context)
    context.hooks.stage("publishing")
    target = context.target
    return target.repository.publish(
        target.name,
        context.staging_dir,
        context.manifest,
        make_default=False,
        before_commit=context.hooks.claim,
    )


def settle(context: TrainingContext, version: int) -> Published:
    """After the commit, where nothing may fail the run: the caller is told the version, and
    DEFAULT is moved to it when asked (a failure to is `default_error`)."""
    target = context.target
    context.hooks.committed(target.name, version)
    default_error = None
    if target.make_default:
        try:
            target.repository.set_default(target.name, version)
        except OSError as error:
            default_error = f"published as version {version}, but DEFAULT was not moved: {error}"
    manifest = reached(context.manifest, "manifest")
    published = manifest.model_copy(update={"name": target.name, "version": version})
    return Published(target.name, version, published, default_error)


def run_training(
    config: TrainConfig,
    data_path: Path,
    name: str,
    repository: Repository,
    hooks: TrainingHooks | None = None,
    *,
    dataset_name: str | None = None,
    make_default: bool = True,
    owner: str | None = None,
) -> Published:
    """Trains on the file at `data_path` and publishes a new version of `name`.

    A transaction: `hooks.should_stop` is asked at every step and every stage, and
    `hooks.claim_commit(version)` (False: cancelled) just before the commit point, the rename
    into place, told the version it is about to commit; until then a stop raises
    TrainingCancelled and leaves nothing (the staging directory is discarded on any failure). After it the run has published whatever follows:
    `hooks.on_commit(version)` is told at once, and a DEFAULT that cannot be moved is
    `Published.default_error`, not a failure. `owner` (a job id) names the staging directory."""
    torch.set_num_threads(max(1, torch.get_num_threads()))
    context = TrainingContext(
        config=config,
        data=TrainingData.load(data_path, config),
        target=PublishTarget(name, repository, dataset_name or data_path.name, make_default, owner),
        hooks=hooks or TrainingHooks(),
        kind=model_kind(config.kind),
        recipe=recipe_of(config.kind),
    )
    train(context)
    context.staging = repository.staging_dir(name, owner)
    try:
        for stage in (export, check, evaluate, report):
            stage(context)
        version = publish(context)
    except BaseException:
        repository.discard_staging(context.staging)
        raise
    # Committed: the version exists. Nothing below may turn the run into a failure.
    return settle(context, version)
