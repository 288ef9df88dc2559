"""GET /metrics and the ASGI middleware that counts and times every HTTP request."""

from __future__ import annotations

import time

from fastapi import APIRouter
from fastapi.routing import iter_route_contexts
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import metrics

router = APIRouter(tags=["operations"])


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    """Prometheus text format."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Requests by route template (never the raw path: no ids in labels) and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        metrics.IN_PROGRESS.inc()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            metrics.IN_PROGRESS.dec()
            template = route_template(scope)
            method = scope.get("method", "")
            metrics.REQUESTS.labels(template, method, str(status)).inc()
            metrics.REQUEST_SECONDS.labels(template, method).observe(time.perf_counter() - started)


def route_template(scope: Scope) -> str:
    """The template of the route that answered, or of the route the request was for when the
    middleware refused it before routing (a 413 for its body's size, a 429 past the rate
    limit); "unmatched" when no route takes the path (a 404)."""
    route = scope.get("route")
    if route is None:
        # Routes of included routers, one by one (FastAPI's own flattening of them)
        for candidate in iter_route_contexts(getattr(scope.get("app"), "routes", ())):
            match, _ = candidate.matches(scope)
            if match == Match.FULL:
                route = candidate
                break
    return getattr(route, "path", None) or "unmatched"
