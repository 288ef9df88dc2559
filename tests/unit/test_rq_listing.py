"""What GET /jobs shows of an RQ job's request, read from the job's argument: the typed spec, a
dict queued before the spec, or an argument this version cannot read (never a failed listing)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from app.config import Settings
from app.jobs.models import JobRequest
from app.jobs.rq_backend import _shown
from app.jobs.spec import JobSpec


def job(argument: Any, meta: dict[str, Any] | None = None) -> Any:
    """The parts of an RQ job that the listing reads."""
    return SimpleNamespace(id="j1", args=[argument], meta=meta or {})


def test_a_jobs_spec_shows_its_names_and_config() -> None:
    request = JobRequest(dataset="digits", name="mnist")
    spec = JobSpec.submitted(request, Settings(), "2026-12-06T10:00:00+00:00")
    shown = _shown(job(spec.to_message()), Settings())
    assert shown["id"] == spec.job_id and shown["name"] == "mnist"
    assert shown["dataset"] == "digits" and shown["config"]["epochs"] == request.config.epochs
    assert shown["created_at"] == "2026-12-06T10:00:00+00:00"


def test_an_argument_this_version_cannot_read_is_shown_as_it_plainly_is() -> None:
    argument = {"dataset": "digits", "name": "old", "config": {"a_setting_since_removed": 1}}
    shown = _shown(job(argument, {"created_at": "then"}), Settings())
    assert shown == {
        "id": "j1",
        "dataset": "digits",
        "name": "old",
        "config": {"a_setting_since_removed": 1},
        "make_default": True,
        "created_at": "then",
    }


def test_a_job_that_carries_no_spec_at_all_is_shown_with_its_id() -> None:
    shown = _shown(job(42), Settings())
    assert shown["id"] == "j1" and shown["name"] == "" and shown["config"] == {}
