"""From a dataset file to a published model version: train, export, parity gate, evaluate,
report, manifest, atomic publish. `vae train` and training jobs both run this."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
import torch

from app.datasets.arrays import ImageDataset, binarize, load_arrays
from app.evaluation.by_kind import evaluate_kind, load_graphs
from app.evaluation.gaussian import OnnxVAE
from app.evaluation.report import write_report
from app.evaluation.vq import OnnxVQVAE
from app.repository.kinds import model_kind
from app.repository.manifest import ImageSpec, Manifest, Metrics, TrainingInfo
from app.repository.protocol import Repository
from app.storage.files import sha256_of
from app.training.config import TrainConfig
from app.training.evaluate_torch import evaluate_torch
from app.training.kinds import training_kind
from app.training.modules import VQVAE, GaussianVAE
from app.training.prior import train_prior
from app.training.quality import frechet_distance, label_accuracy, train_classifier
from app.training.trainer import (
    ProgressCallback,
    TrainingCancelled,
    class_index,
    seed_everything,
    train,
)
from app.training.weights import WEIGHTS_FILE, round_to_stored_precision, save_weights

logger = logging.getLogger(__name__)
Stage = Callable[[str], None]
Commit = Callable[[int], None]


@dataclass(frozen=True)
class Published:
    """What a finished run published; `default_error` when DEFAULT could not be moved to it
    (the version is published all the same)."""

    name: str
    version: int
    manifest: Manifest
    default_error: str | None = None


def heldout_images(config: TrainConfig, heldout: ImageDataset) -> np.ndarray:
    """The images evaluation scores: binarized once with a fixed seed for a Bernoulli model,
    so every version of a model is scored on the same binary digits."""
    x = heldout.as_float()
    if config.eval_images is not None:
        x = x[: config.eval_images]
    if config.likelihood == "bernoulli":
        x = binarize(x, np.random.default_rng(config.seed + 1))
    return x


def run_training(
    config: TrainConfig,
    data_path: Path,
    name: str,
    repository: Repository,
    dataset_name: str | None = None,
    on_progress: ProgressCallback | None = None,
    on_stage: Stage | None = None,
    should_stop: Callable[[], bool] | None = None,
    make_default: bool = True,
    owner: str | None = None,
    claim_commit: Callable[[], bool] | None = None,
    on_commit: Commit | None = None,
) -> Published:
    """Trains on the file at `data_path` and publishes a new version of `name`.

    A transaction: `should_stop` is checked at every step and every stage, and `claim_commit`
    (False: cancelled) just before the commit point, the rename into place; until then a stop
    raises TrainingCancelled and leaves nothing. After it the run has published whatever
    follows: `on_commit(version)` is told at once, and a DEFAULT that cannot be moved is
    `Published.default_error`, not a failure. `owner` (a job id) names the staging directory."""

    def stage(name: str) -> None:
        if should_stop is not None and should_stop():
            raise TrainingCancelled(f"cancelled before {name}")
        (on_stage or (lambda _: None))(name)

    def gate() -> None:
        if should_stop is not None and should_stop():
            raise TrainingCancelled("cancelled before publishing")
        if claim_commit is not None and not claim_commit():
            raise TrainingCancelled("cancelled before publishing")

    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = load_arrays(data_path)
    data_sha256 = sha256_of(data_path)  # now: the dataset may be deleted while this trains
    train_set, heldout = data.split(config.holdout_count(len(data)), seed=config.seed)
    classes = None if data.labels is None else np.unique(data.labels)
    stage("training")
    outcome = train(
        config, train_set, on_progress=on_progress, should_stop=should_stop, classes=classes
    )
    model = outcome.model
    kind, trainable = training_kind(config.kind)
    prior_seconds = 0.0
    if kind.has_code_prior and isinstance(model, VQVAE):
        stage("training prior")
        started = time.monotonic()
        generator = seed_everything(config.seed + 3)
        train_prior(config, model, train_set, generator, on_progress, should_stop)
        prior_seconds = time.monotonic() - started
    conditional = model.conditional
    heldout_y = (
        class_index(heldout.labels, classes)
        if conditional and heldout.labels is not None and classes is not None
        else None
    )

    staging = repository.staging_dir(name, owner)
    try:
        stage("exporting")
        round_to_stored_precision(model)
        trainable.export(model, staging)
        save_weights(model.state_dict(), staging / WEIGHTS_FILE, config.model_dump_json())
        max_err = trainable.check_parity(model, staging, heldout.as_float()[:256], config.seed)
        stage("evaluating")
        graphs = load_graphs(kind, staging, config.likelihood)
        x = heldout_images(config, heldout)
        result = evaluate_kind(
            kind,
            graphs,
            x,
            k=config.eval_k,
            seed=config.seed,
            y=None if heldout_y is None else heldout_y[: len(x)],
            commitment_cost=config.commitment_cost,
            torch_evaluator=(
                partial(evaluate_torch, model) if isinstance(model, GaussianVAE) else None
            ),
        )
        write_report(
            graphs,
            heldout.as_float(),
            heldout.labels,
            config.latent_dim,
            staging / "report",
            config.seed,
            heldout_y,
            samples=graphs.sample(64, config.seed) if isinstance(graphs, OnnxVQVAE) else None,
        )
        extra: dict[str, object] = {}
        if config.quality and classes is not None and len(classes) > 1:
            stage("scoring samples")
            extra["quality"] = score_samples(
                graphs, config, train_set, heldout, classes, model.noise_dim
            )
        warning = (
            None
            if result.active_units is None or result.kl_per_dim is None
            else collapse_warning(result.active_units, config.latent_dim)
        )
        if warning:
            extra["posterior_collapse_warning"] = warning
        channels, height, width = data.shape
        class_names = [] if classes is None else [str(c) for c in classes]
        manifest = Manifest(
            name=name,
            version=0,
            latent_dim=model.latent_size,
            image=ImageSpec(height=height, width=width, channels=channels),
            likelihood=config.likelihood,
            kind=config.kind,
            classes=class_names if conditional else [],
            label_values=[int(c) for c in classes] if conditional and classes is not None else [],
            noise_dim=model.noise_dim,
            **model.manifest_fields(),
            training=TrainingInfo(
                dataset=dataset_name or data_path.name,
                sha256=data_sha256,
                config=json.loads(config.model_dump_json()),
                seconds=round(outcome.seconds + prior_seconds, 2),
                epochs_run=round(outcome.epochs_run, 3),
                train_images=len(train_set),
                heldout_images=len(heldout),
            ),
            metrics=Metrics(**result.__dict__, **extra),
            parity={"max_abs_err": max_err},
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        stage("publishing")
        version = repository.publish(
            name, staging, manifest, make_default=False, before_commit=gate
        )
    except BaseException:
        repository.discard_staging(staging)
        raise
    # Committed: the version exists. Nothing below may turn the run into a failure.
    if on_commit is not None:
        try:
            on_commit(version)
        except Exception:
            logger.exception("published %s version %d; could not report it at once", name, version)
    default_error = None
    if make_default:
        try:
            repository.set_default(name, version)
        except OSError as error:
            default_error = f"published as version {version}, but DEFAULT was not moved: {error}"
    published = manifest.model_copy(update={"name": name, "version": version})
    return Published(name, version, published, default_error)


COLLAPSE_SHARE = 0.1


def collapse_warning(active: int, dims: int) -> str | None:
    """A warning when fewer than a tenth of the latent dimensions (and under two) carry
    information: the posterior has collapsed onto the prior."""
    if active < max(2, int(COLLAPSE_SHARE * dims)):
        return (
            f"posterior collapse: only {active} of {dims} latent dimensions are active; "
            "try KL warm-up (kl_warmup_epochs), free_bits, a smaller beta or a weaker decoder"
        )
    return None


def score_samples(
    graphs: OnnxVAE,
    config: TrainConfig,
    train_set: ImageDataset,
    heldout: ImageDataset,
    classes: np.ndarray,
    noise_dim: int,
    per_class: int = 100,
) -> dict[str, float]:
    """Trains a classifier on the labels and scores samples with it (see app/training/quality)."""
    assert train_set.labels is not None and heldout.labels is not None
    limit = 60000  # the whole of an MNIST-sized training set: 98% held-out accuracy
    x_train, y_train = train_set.as_float()[:limit], class_index(train_set.labels[:limit], classes)
    x_test, y_test = heldout.as_float()[:limit], class_index(heldout.labels[:limit], classes)
    classifier = train_classifier(x_train, y_train, x_test, y_test, seed=config.seed)
    rng = np.random.default_rng(config.seed + 2)
    scores = {"classifier_accuracy": round(classifier.accuracy, 4)}
    kind = model_kind(config.kind)
    if isinstance(graphs, OnnxVQVAE):
        count = min(2000, len(x_test))
        samples = graphs.sample(count, config.seed + 2)
        distance = frechet_distance(
            classifier.features(x_test[:count]), classifier.features(samples)
        )
        scores["frechet_distance"] = round(distance, 4)
    elif kind.conditional:
        intended = np.repeat(np.arange(len(classes)), per_class)
        z = rng.standard_normal((len(intended), config.latent_dim)).astype(np.float32)
        samples = graphs.decode(z, intended)
        scores["label_accuracy"] = round(label_accuracy(classifier, samples, intended), 4)
    else:
        count = min(2000, len(x_test))
        z = rng.standard_normal((count, config.latent_dim + noise_dim)).astype(np.float32)
        samples = graphs.decode(z)
        distance = frechet_distance(
            classifier.features(x_test[:count]), classifier.features(samples)
        )
        scores["frechet_distance"] = round(distance, 4)
    return scores
