"""Training jobs: the JobBackend interface (base), RQ on Redis (rq_backend) or a local process
pool (local), the training task both run (tasks), and the job gauges (monitor)."""

from __future__ import annotations

from app.config import Settings
from app.jobs.base import JobBackend


def make_backend(settings: Settings) -> JobBackend:
    """RQ when VAE_REDIS_URL is set, otherwise the local process pool."""
    if settings.redis_url:
        from app.jobs.rq_backend import RQJobBackend

        return RQJobBackend(settings)
    from app.jobs.local import LocalJobBackend

    return LocalJobBackend(settings)
