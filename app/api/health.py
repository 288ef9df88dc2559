"""Open Inference Protocol health: live, ready, and per-model readiness."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from starlette.responses import Response

from app.api.deps import StateDep
from app.api.errors import error_responses
from app.api.responses import json_response
from app.repository.store import ModelNotFound
from app.serving.registry import parse_ref

router = APIRouter(prefix="/v2", tags=["health"])

NOT_READY: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "not ready yet",
        "content": {
            "application/json": {
                "schema": {"type": "object", "properties": {"ready": {"const": False}},
                           "required": ["ready"]}
            }
        },
    }
}  # fmt: skip


@router.get("/health/live")
async def live() -> Response:
    """The process answers."""
    return json_response({"live": True})


@router.get("/health/ready", responses=NOT_READY)
async def ready(state: StateDep) -> Response:
    """Ready once the default model is loaded and warmed up; the latent cache and the model
    repository may be degraded (an unreachable object store: serving what the replica cached)."""
    is_ready = state.registry.ready
    repository = state.registry.repository_status()
    cache = state.cache.status()
    body = {
        "ready": is_ready,
        "status": "degraded" if "degraded" in (cache, repository["status"]) else "ok",
        "default_model": state.settings.default_model,
        "models_loaded": len(state.registry.loaded()),
        "cache": cache,
        "repository": repository,
    }
    return json_response(body, 200 if is_ready else 503)


@router.get("/models/{name}/ready", responses={**NOT_READY, **error_responses(404, 422)})
async def model_ready(name: str, state: StateDep) -> Response:
    """Whether `name` (or `name:version`) is loaded and answering."""
    model_name, version = parse_ref(name)
    loaded = {(m.name, m.version) for m in state.registry.loaded()}
    version = version if version is not None else state.registry.default_version(model_name)
    if version is None or (model_name, version) not in loaded:
        if not await asyncio.to_thread(state.registry.repository.versions, model_name):
            raise ModelNotFound(f"no model named {model_name!r}")
        return json_response({"name": model_name, "ready": False}, 503)
    return json_response({"name": model_name, "version": version, "ready": True})
