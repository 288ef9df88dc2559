"""The job spec: built once from a request and the API's settings, it carries everything the
worker needs, storage locations included, and survives the trip as JSON text unchanged; a job
queued before the typed spec is still read."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings
from app.jobs.models import JobRequest
from app.jobs.spec import JobSpec
from app.storage.locations import ObjectUrl
from app.training.config import TrainConfig

REQUEST = JobRequest(
    dataset="strokes", name="digits", config=TrainConfig(epochs=3), make_default=False
)


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_a_spec_built_from_settings_carries_the_storage_locations() -> None:
    spec = JobSpec.submitted(
        REQUEST,
        settings(
            models_dir="s3://models/prefix",
            data_dir="/srv/data",
            s3_endpoint_url="http://store:8333",
            redis_url="redis://queue:6379/0",
        ),
        created_at="2026-12-06T13:00:00+00:00",
    )
    assert spec.models_dir == ObjectUrl("models", "prefix")
    assert spec.data_dir == Path("/srv/data")
    assert spec.s3_endpoint_url == "http://store:8333"
    assert spec.redis_url == "redis://queue:6379/0"
    assert (spec.dataset, spec.name, spec.make_default) == ("strokes", "digits", False)
    assert spec.config.epochs == 3 and len(spec.job_id) == 32


def test_each_submitted_job_gets_its_own_id() -> None:
    first = JobSpec.submitted(REQUEST, settings(), created_at="")
    assert JobSpec.submitted(REQUEST, settings(), created_at="").job_id != first.job_id


def test_a_spec_round_trips_through_json_unchanged() -> None:
    spec = JobSpec.submitted(
        REQUEST, settings(models_dir="s3://models", data_dir="/srv/data"), created_at="now"
    )
    message = spec.to_message()
    assert isinstance(message, str)
    again = JobSpec.from_message(message, "ignored", settings())
    assert again == spec
    assert again.models_dir == ObjectUrl("models") and again.data_dir == Path("/srv/data")


def test_a_job_queued_before_the_typed_spec_is_still_read() -> None:
    legacy = {
        "dataset": "strokes",
        "name": "digits",
        "config": {"epochs": 2},
        "make_default": True,
        "models_dir": "s3://models",
        "data_dir": "/srv/data",
    }
    reader = settings(s3_endpoint_url="http://store:8333", redis_url="redis://queue")
    spec = JobSpec.from_message(legacy, "abc123", reader)
    assert spec.job_id == "abc123" and spec.config.epochs == 2
    assert spec.models_dir == ObjectUrl("models")
    assert spec.s3_endpoint_url == "http://store:8333" and spec.redis_url == "redis://queue"


def test_a_job_that_carries_no_spec_is_refused() -> None:
    with pytest.raises(ValueError, match="no training spec"):
        JobSpec.from_message(None, "abc123", settings())


def test_the_job_is_shown_as_it_was_asked() -> None:
    spec = JobSpec.submitted(REQUEST, settings(), created_at="2026-12-06T13:00:00+00:00")
    info = spec.info(status="queued")
    assert (info.id, info.dataset, info.name, info.status) == (
        spec.job_id,
        "strokes",
        "digits",
        "queued",
    )
    assert info.config == REQUEST.config.model_dump(mode="json")
    assert info.created_at == "2026-12-06T13:00:00+00:00"
