"""What a training job is: the request, its status and what it reports."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.jobs.transaction import CancelOutcome
from app.storage.files import NAME_PATTERN
from app.training.config import TrainConfig

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL_STATES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class JobRequest(BaseModel):
    """POST /jobs: train `name` on `dataset` with `config` (every field has a default)."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(..., pattern=NAME_PATTERN.pattern, description="a stored dataset's name")
    name: str = Field(
        ...,
        pattern=NAME_PATTERN.pattern,
        description="the model name the new version is published under",
    )
    config: TrainConfig = Field(default_factory=TrainConfig)
    make_default: bool = Field(True, description="make the new version the one that answers")


class JobInfo(BaseModel):
    """GET /jobs/{id}."""

    id: str
    status: JobStatus
    dataset: str
    name: str
    config: dict[str, Any]
    make_default: bool = Field(
        True, description="whether the new version becomes the one that answers for its name"
    )
    progress: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = Field(
        None,
        description="model, version, metrics; default_error when the version was published "
        "but DEFAULT could not be moved to it",
    )
    error: str | None = None
    cancel: CancelOutcome | None = Field(
        None, description="what a cancel did, once one was asked for"
    )
    created_at: str
    started_at: str | None = None
    ended_at: str | None = None
