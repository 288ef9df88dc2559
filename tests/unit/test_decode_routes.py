"""POST /decode has two routes: the hot one (a plain Starlette route, tried first) and FastAPI's
documented one. They must answer the same, and the documented one must never gain work (a
dependency) that the hot one would silently skip: create_app refuses to build such an app."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import inference
from app.api.hot_routes import HotRouteMismatch
from app.api.inference import install_hot_routes
from app.api.responses import NPY_MEDIA_TYPE, npy_bytes
from app.main import create_app
from tests.support.in_process import serving, settings_for

LATENTS = np.random.default_rng(0).standard_normal((3, 32)).astype(np.float32)
NPY = {"content-type": NPY_MEDIA_TYPE}

# name -> (the request's keyword arguments for httpx, what it should get)
REQUESTS: dict[str, tuple[dict[str, Any], int]] = {
    "json png": ({"json": {"latents": LATENTS.tolist()}}, 200),
    "json array": ({"json": {"latents": LATENTS.tolist(), "format": "array"}}, 200),
    "json asking for npy": (
        {"json": {"latents": LATENTS.tolist()}, "headers": {"accept": NPY_MEDIA_TYPE}}, 200
    ),
    "npy in, npy out": (
        {"content": npy_bytes(LATENTS), "headers": {**NPY, "accept": NPY_MEDIA_TYPE}}, 200
    ),
    "npy in, png out": ({"content": npy_bytes(LATENTS), "headers": NPY}, 200),
    "wrong latent width": ({"json": {"latents": [[0.0, 1.0]]}}, 422),
    "not a body": ({"json": {"latents": "zero"}}, 422),
    "not json": ({"content": b"{", "headers": {"content-type": "application/json"}}, 422),
    "not a .npy": ({"content": b"garbage", "headers": NPY}, 400),
    "unknown model": ({"json": {"latents": LATENTS.tolist(), "model": "nope"}}, 404),
    "unsupported media type": ({"content": b"x", "headers": {"content-type": "text/plain"}}, 415),
}  # fmt: skip


class _RouteRecorder:
    """The app, noting which route answered each request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes: list[object] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        self.routes.append(scope.get("route"))


def _hot_routes(app: FastAPI) -> list[Route]:
    return [
        route
        for route in app.router.routes
        if isinstance(route, Route) and not isinstance(route, APIRoute) and route.path == "/decode"
    ]


@contextlib.contextmanager
def _documented_route_only(app: FastAPI) -> Iterator[None]:
    """The app with its hot /decode route taken out, so FastAPI's route answers."""
    hot = _hot_routes(app)
    for route in hot:
        app.router.routes.remove(route)
    try:
        yield
    finally:
        app.router.routes[0:0] = hot


def _same_answer(hot: httpx.Response, documented: httpx.Response) -> tuple[Any, ...]:
    def answer(response: httpx.Response) -> tuple[Any, ...]:
        headers = {k: v for k, v in response.headers.items() if k != "date"}
        return response.status_code, headers, response.content

    return answer(hot), answer(documented)


def test_the_hot_and_the_documented_route_answer_the_same(models_dir: Path, tmp_path: Path) -> None:
    app = create_app(settings_for(models_dir, tmp_path / "data"))
    recorder = _RouteRecorder(app)

    async def scenario() -> None:
        async with serving(app, front=recorder) as http:
            for name, (request, status) in REQUESTS.items():
                hot = await http.post("/decode", **request)
                with _documented_route_only(app):
                    documented = await http.post("/decode", **request)
                assert hot.status_code == status, (name, hot.text)
                first, second = _same_answer(hot, documented)
                assert first == second, name

    asyncio.run(scenario())
    hot_route = _hot_routes(app)[0]
    assert all(route is hot_route for route in recorder.routes[0::2]), "the hot route answers"
    documented = recorder.routes[1::2]
    assert all(route is not None and route is not hot_route for route in documented)


def _extra() -> None:
    """A dependency the hot route knows nothing about."""


def test_an_app_level_dependency_the_hot_route_would_skip_is_refused() -> None:
    app = FastAPI(dependencies=[Depends(_extra)])
    app.include_router(inference.router)
    with pytest.raises(HotRouteMismatch, match="_extra"):
        install_hot_routes(app)


def test_a_dependency_added_to_the_documented_decode_route_is_refused() -> None:
    router = APIRouter()
    router.post("/decode", dependencies=[Depends(_extra)])(inference.decode)
    app = FastAPI()
    app.include_router(router)
    with pytest.raises(HotRouteMismatch, match="_extra"):
        install_hot_routes(app)


def test_another_handler_behind_the_documented_decode_route_is_refused() -> None:
    async def other() -> None:
        """Not the handler the hot route calls."""

    app = FastAPI()
    app.post("/decode")(other)
    with pytest.raises(HotRouteMismatch, match="other"):
        install_hot_routes(app)


def test_the_service_as_built_has_one_hot_decode_route(models_dir: Path, tmp_path: Path) -> None:
    assert len(_hot_routes(create_app(settings_for(models_dir, tmp_path / "data")))) == 1
