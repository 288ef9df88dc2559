"""GET / (the latent explorer page) and GET /static/{name} (its scripts and styles).

The page lives in app/static as plain HTML, CSS and JavaScript modules (no build step) and talks
to the service only through the public JSON API, as any other frontend would.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.api.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

# Only plain file names of the kinds the page is made of: no directories, no dot files.
_NAME = re.compile(r"^[A-Za-z0-9_-]+\.(html|js|css|svg|png)$")
_MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "js": "text/javascript; charset=utf-8",
    "css": "text/css; charset=utf-8",
    "svg": "image/svg+xml",
    "png": "image/png",
}

# The page loads nothing from elsewhere and runs no inline script; its API calls are same-origin.
# A video model's clips play from blob: URLs of /decode's mp4 answers (media-src).
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
        "style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(tags=["ui"], include_in_schema=False)


def _static_file(name: str) -> Path:
    """The file app/static/`name`, or a 404 for anything else."""
    path = STATIC_DIR / name
    if not _NAME.match(name) or not path.is_file():
        raise NotFound(f"no static file {name!r}")
    return path


@router.get("/")
async def explorer_page() -> FileResponse:
    """The latent explorer: draw, encode, interpolate, sample and steer the latent dimensions."""
    return FileResponse(
        _static_file("index.html"), media_type=_MEDIA_TYPES["html"], headers=_PAGE_HEADERS
    )


@router.get("/static/{name}")
async def static_file(name: str) -> FileResponse:
    """One of the page's files (revalidated on every load, so a new release shows at once)."""
    path = _static_file(name)
    media_type = _MEDIA_TYPES[path.suffix.removeprefix(".")]
    return FileResponse(
        path,
        media_type=media_type,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
