"""What a training job is: the request, its status and what it reports."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.repository.store import NAME_PATTERN
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
    progress: dict[str, Any] = Field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    created_at: str
    started_at: str | None = None
    ended_at: str | None = None
