"""Bearer tokens: `Authorization: Bearer <token>` on the admin routes (VAE_ADMIN_TOKEN) and on
the remote-VAE routes (VAE_REMOTE_TOKEN), refused as MissingToken (401) or WrongToken (403)."""

from __future__ import annotations

import hmac

from starlette.requests import Request


class MissingToken(PermissionError):
    """A route that needs a bearer token was called without one (401)."""


class WrongToken(PermissionError):
    """A bearer token that is not the one the route needs (403)."""


def check_bearer(request: Request, expected: str | None, missing: str, wrong: str) -> None:
    """MissingToken (message `missing`) without `Authorization: Bearer <token>`, WrongToken
    (message `wrong`) when the token is not `expected`; nothing to check when `expected` is
    empty."""
    if not expected:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise MissingToken(missing)
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise WrongToken(wrong)
