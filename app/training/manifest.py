"""The manifest a training run publishes, from its context once every stage before the commit
has run: what the model is, how it was made, how it scores."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from app.repository.manifest import ImageSpec, Manifest, Metrics, TrainingInfo
from app.training.context import TrainingContext, reached

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


def training_info(context: TrainingContext) -> TrainingInfo:
    """How the version was made: the dataset and its hash, the config, time and epochs."""
    data = context.data
    return TrainingInfo(
        dataset=context.target.dataset,
        sha256=data.sha256,
        config=json.loads(context.config.model_dump_json()),
        seconds=round(context.seconds, 2),
        epochs_run=round(context.epochs_run, 3),
        train_images=len(data.train_set),
        heldout_images=len(data.heldout),
    )


def metrics(context: TrainingContext) -> Metrics:
    """The held-out scores, the samples' quality when it was scored, and a collapse warning."""
    scores = context.scores
    if scores is None:
        raise RuntimeError("no scores yet: the evaluate stage has not run")
    extra: dict[str, object] = {}
    if context.quality:
        extra["quality"] = context.quality
    if scores.active_units is not None and scores.kl_per_dim is not None:
        warning = collapse_warning(scores.active_units, context.config.latent_dim)
        if warning:
            extra["posterior_collapse_warning"] = warning
    return Metrics(**scores.__dict__, **extra)


def build_manifest(context: TrainingContext) -> Manifest:
    """The manifest of the version the run is about to publish (its number is the
    repository's to give: 0 here)."""
    model, data = context.model, context.data
    channels, height, width = data.shape
    return Manifest(
        name=context.target.name,
        version=0,
        image=ImageSpec(height=height, width=width, channels=channels),
        likelihood=context.config.likelihood,
        kind=context.config.kind,
        **context.recipe.manifest_fields(model, data),
        training=training_info(context),
        metrics=metrics(context),
        parity={"max_abs_err": reached(context.max_abs_err, "parity check")},
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
