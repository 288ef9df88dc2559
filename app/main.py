"""create_app(settings): the FastAPI application, its lifespan (the registry, the latent cache
and the inference service its models' adapters share, the job backend) and its middleware."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from pydantic.json_schema import models_json_schema

from app.api import datasets, health, inference, jobs, models, observability, oip, remote, ui
from app.api.deps import AppState
from app.api.errors import document_error_bodies, install_error_handlers
from app.api.limits import BodyLimitMiddleware
from app.api.ratelimit import RateLimiter, RateLimitMiddleware
from app.api.schemas import DecodeRequest, EncodeRequest, ErrorResponse
from app.config import Settings, get_settings
from app.datasets.opening import open_datasets
from app.jobs import make_backend
from app.jobs.monitor import watch_jobs
from app.repository.opening import open_served_repository
from app.serving.cache.memory import LatentCache, MemoryBackend
from app.serving.cache.redis_cache import RedisBackend
from app.serving.inference import InferenceService
from app.serving.notifications import listen
from app.serving.registry import ModelRegistry

logger = logging.getLogger("app")


def _make_cache(settings: Settings) -> LatentCache:
    if settings.redis_url:
        backend = RedisBackend(
            settings.redis_url,
            timeout_s=settings.cache_redis_timeout_s,
            failure_threshold=settings.cache_breaker_failures,
            reset_timeout_s=settings.cache_breaker_reset_s,
        )
        return LatentCache(backend, settings.cache_ttl_s)
    return LatentCache(MemoryBackend(settings.cache_max_entries), settings.cache_ttl_s)


def _start_services(settings: Settings) -> AppState:
    """The state every request reads: the model registry, whose versions' adapters share one
    inference service (the latent cache), the job backend and the dataset store."""
    repository = open_served_repository(
        settings.models_dir,
        settings.s3_endpoint_url,
        settings.models_cache_dir,
        settings.shipped_models,
    )
    cache = _make_cache(settings)
    inference = InferenceService(cache, settings)
    registry = ModelRegistry(repository, settings, inference)
    datasets = open_datasets(settings.data_dir, settings.s3_endpoint_url)
    return AppState(settings, registry, cache, inference, make_backend(settings), datasets)


def _lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shutdown: the services, the model registry's first scan and its watchers."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.admin_token:
            logger.warning(
                "VAE_ADMIN_TOKEN is not set: admin routes trust every caller; bind 127.0.0.1 only"
            )
        state = app.state.vae = _start_services(settings)
        registry, loop = state.registry, asyncio.get_running_loop()
        tasks = [loop.create_task(watch_jobs(state.jobs), name="job-gauges")]
        await registry.start()
        if settings.redis_url and registry.mirror is not None:
            announced = listen(settings.redis_url, registry.refresh)
            tasks.append(loop.create_task(announced, name="model-announcements"))
        if not registry.ready:
            logger.error(
                "the default model %r is not in %s", settings.default_model, settings.models_dir
            )
        # Everything made at start-up lives as long as the process: out of the collector's sight,
        # a full collection under load no longer walks it (those pauses were the latency tail).
        gc.freeze()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.to_thread(state.jobs.close)
            await registry.stop()
            await state.cache.close()

    return lifespan


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """Body limits and deadlines, rate limiting, metrics and CORS (the last added runs first)."""
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        upload_limit=settings.max_dataset_bytes,
        body_timeout_s=settings.body_timeout_s,
        body_min_rate=settings.body_min_rate,
    )
    if settings.rate_limit_per_s > 0:
        app.add_middleware(
            RateLimitMiddleware,
            limiter=RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst),
            trusted_proxies=settings.rate_limit_trusted_proxies,
        )
    app.add_middleware(observability.MetricsMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service, configured by `settings` (the environment's when None)."""
    settings = settings or get_settings()
    # /docs (Swagger UI) is served with its scripts and styles from the fastapi-offline package:
    # the page loads nothing from any other host. No ReDoc page: its bundle fetches its logo
    # from a CDN.
    app = FastAPIOffline(
        redoc_url=None,
        title="vae-service",
        version="0.1.0",
        summary="Variational Autoencoders behind an HTTP API, answered by ONNX Runtime.",
        lifespan=_lifespan(settings),
        # Prometheus is the telemetry here; with OpenTelemetry off FastAPI skips a provider
        # lookup on every request (4% of the event loop under load).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    install_error_handlers(app)
    _add_middleware(app, settings)
    # oip before health: its /v2/models/{model}/ready answers <name>.<graph>, hands others on
    for module in (inference, remote, models, datasets, jobs, oip, health, observability):
        app.include_router(module.router)
    inference.install_hot_routes(app)
    oip.install_hot_routes(app)
    _document_raw_bodies(app)
    app.include_router(ui.router)  # GET /: the latent explorer page (app/static)
    return app


def openapi_json(app: FastAPI) -> str:
    """The app's OpenAPI document as the committed `openapi.json` holds it (`vae openapi`)."""
    return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


def _document_raw_bodies(app: FastAPI) -> None:
    """/encode and /decode read their bodies themselves (JSON or .npy); their JSON schemas are
    added to the OpenAPI components so the documented request bodies resolve. Every error
    status is documented with the one error body the API sends."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary, routes=app.routes
        )
        _, extra = models_json_schema(
            [
                (EncodeRequest, "validation"),
                (DecodeRequest, "validation"),
                (ErrorResponse, "serialization"),
            ],
            ref_template="#/components/schemas/{model}",
        )
        schema.setdefault("components", {}).setdefault("schemas", {}).update(extra.get("$defs", {}))
        document_error_bodies(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
