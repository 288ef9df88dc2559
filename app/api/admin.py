"""Admin authorisation: `Authorization: Bearer <VAE_ADMIN_TOKEN>` on routes that change things."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.api.deps import StateDep
from app.api.tokens import check_bearer


def require_admin(request: Request, state: StateDep) -> None:
    """401 without a bearer token, 403 with a wrong one. With no token configured the server
    only listens on 127.0.0.1, and local callers are trusted."""
    check_bearer(
        request,
        state.settings.admin_token,
        missing="this route needs 'Authorization: Bearer <admin token>'",
        wrong="the admin token is wrong",
    )


AdminDep = Annotated[None, Depends(require_admin)]
