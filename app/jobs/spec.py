"""What a training job is given: one typed `JobSpec`, built once by the API side when the job is
submitted and sent as JSON text to whatever runs it (the RQ job's argument, or the local child's),
so a worker needs nothing from its own settings: the storage locations travel with the job."""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.config import Settings
from app.jobs.models import JobInfo, JobRequest
from app.storage.locations import Location
from app.training.config import TrainConfig


class JobSpec(BaseModel):
    """Train `name` on the stored dataset `dataset` with `config` and publish a version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = Field(description="the job's id; it names the job's staging directories")
    dataset: str
    name: str
    config: TrainConfig
    make_default: bool = True
    created_at: str = ""
    models_dir: Location = Field(description="the model repository: a directory or s3://")
    data_dir: Location = Field(description="the dataset store: a directory or s3://")
    s3_endpoint_url: str | None = Field(None, description="the endpoint of s3:// locations")
    redis_url: str | None = Field(
        None, description="where the new version is announced to the api replicas (None: not)"
    )

    @classmethod
    def submitted(cls, request: JobRequest, settings: Settings, created_at: str) -> JobSpec:
        """A new job (a fresh id) for `request`, with the storage of `settings`."""
        return cls(
            job_id=uuid.uuid4().hex,
            dataset=request.dataset,
            name=request.name,
            config=request.config,
            make_default=request.make_default,
            created_at=created_at,
            models_dir=settings.models_dir,
            data_dir=settings.data_dir,
            s3_endpoint_url=settings.s3_endpoint_url,
            redis_url=settings.redis_url,
        )

    def to_message(self) -> str:
        """The spec as the JSON text a job carries."""
        return self.model_dump_json()

    @classmethod
    def from_message(cls, message: Any, job_id: str, settings: Settings) -> JobSpec:
        """The spec a job carries: JSON text, or the dict a job queued before the typed spec
        carried (its id and storage endpoint then come from the reader: the job and the
        reader's settings). ValueError when it is neither."""
        if isinstance(message, str | bytes):
            return cls.model_validate_json(message)
        if not isinstance(message, dict):
            raise ValueError(f"job {job_id} carries no training spec")
        return cls.model_validate(
            {
                "job_id": job_id,
                "s3_endpoint_url": settings.s3_endpoint_url,
                "redis_url": settings.redis_url,
                **message,
            }
        )

    def shown(self) -> dict[str, Any]:
        """What GET /jobs shows of the job's request (JobInfo's id, dataset, name, config,
        make_default and created_at)."""
        return {
            "id": self.job_id,
            "dataset": self.dataset,
            "name": self.name,
            "config": self.config.model_dump(mode="json"),
            "make_default": self.make_default,
            "created_at": self.created_at,
        }

    def info(self, **state: Any) -> JobInfo:
        """The job as GET /jobs shows it, in `state` (status, progress, result, ...)."""
        return JobInfo(**self.shown(), **state)
