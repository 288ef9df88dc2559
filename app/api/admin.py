"""Admin authorisation: `Authorization: Bearer <VAE_ADMIN_TOKEN>` on routes that change things."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, Request

from app.api.deps import StateDep
from app.api.errors import ApiError


def require_admin(request: Request, state: StateDep) -> None:
    """401 without a bearer token, 403 with a wrong one. With no token configured the server
    only listens on 127.0.0.1, and local callers are trusted."""
    expected = state.settings.admin_token
    if not expected:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "this route needs 'Authorization: Bearer <admin token>'", "unauthorized",
                       headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
    if not secrets.compare_digest(token.strip(), expected):
        raise ApiError(403, "the admin token is wrong", "forbidden")


AdminDep = Annotated[None, Depends(require_admin)]
