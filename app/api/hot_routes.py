"""Hot routes: a plain Starlette route put ahead of a documented FastAPI one, answering the same
path with the same handler but without FastAPI's per-request dependency solving and wrapping
(a sixth to a fifth of a one-latent request's time). The documented route stays for the OpenAPI
document, and is checked to need nothing the hot route skips: a dependency or parameter added to
it must fail loudly at start-up (HotRouteMismatch), not silently never run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.routing import RouteContext, iter_route_contexts
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

from app.api.deps import get_state

HotEndpoint = Callable[[Request], Awaitable[Response]]


class HotRouteMismatch(RuntimeError):
    """The documented route would do work that its hot route skips (raised by create_app)."""


class HotRoute(Route):
    """A Starlette route that names itself in the scope as FastAPI's do (the metrics label
    requests by `scope["route"].path`; FastAPI's router leaves that to the route)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


def _name_of(call: object) -> str:
    return str(getattr(call, "__name__", repr(call)))


def _check_same_work(route: RouteContext, endpoint: object) -> None:
    """The hot route calls `endpoint` with the request, the app's state (`get_state`) and the
    path's parameters, nothing else: the documented route must need exactly that."""
    dependant = route.dependant
    extra = [
        _name_of(dependency.call)
        for dependency in dependant.dependencies
        if dependency.call is not get_state or dependency.dependencies
    ]
    parameters = [
        param.name
        for param in (
            *dependant.query_params,
            *dependant.header_params,
            *dependant.cookie_params,
            *dependant.body_params,
        )
    ]
    if (
        route.endpoint is not endpoint
        or extra
        or parameters
        or dependant.request_param_name is None
    ):
        raise HotRouteMismatch(
            f"POST {route.path} is answered by a hot route that runs only "
            f"{_name_of(endpoint)}(request, ...), but the documented route has endpoint "
            f"{_name_of(route.endpoint)}, dependencies {extra or 'none'} and parameters "
            f"{parameters or 'none'}: resolve them in the hot route too, or drop it"
        )


def install_hot_route(app: FastAPI, path: str, hot: HotEndpoint, endpoint: object) -> None:
    """Puts `hot` first for POST `path`, once every documented POST `path` (as included, with the
    app's and routers' dependencies added) is answered by `endpoint` and needs nothing `hot`
    skips. Call it once every router is included."""
    documented = [
        route
        for route in iter_route_contexts(app.router.routes)
        if hasattr(route.original_route, "dependant")  # FastAPI's, not a plain Starlette route
        and route.path == path
        and "POST" in (route.methods or set())
    ]
    if not documented:
        raise HotRouteMismatch(f"no documented POST {path} route to serve a hot route for")
    for route in documented:
        _check_same_work(route, endpoint)
    app.router.routes.insert(0, HotRoute(path, hot, methods=["POST"]))
