"""The service in this process: `create_app(Settings(...))` with its lifespan run, called through
`httpx.ASGITransport` (no port, no child process), for fast API tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp

from app.config import Settings


def settings_for(models_dir: Path, data_dir: Path, **overrides: Any) -> Settings:
    """Settings that read nothing from the environment or a .env file: the given directories,
    no hot-reload polling, no admin token (the in-process client is trusted), plus `overrides`."""
    values: dict[str, Any] = {
        "models_dir": models_dir,
        "data_dir": data_dir,
        "reload_interval_s": 0.0,
        "admin_token": None,
        "redis_url": None,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextlib.asynccontextmanager
async def serving(app: FastAPI, front: ASGIApp | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """Runs `app`'s lifespan (models loaded, job backend started) and yields a client calling
    it in process (through `front`, a wrapper around it, when given); everything is stopped on
    the way out."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=front or app)
        async with httpx.AsyncClient(transport=transport, base_url="http://in-process") as client:
            yield client
