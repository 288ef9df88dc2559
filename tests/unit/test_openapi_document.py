"""The committed openapi.json is the app's OpenAPI document, so frontend teams can generate
typed clients from the repository; `vae openapi > openapi.json` regenerates it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from app.cli import app as cli
from app.main import create_app, openapi_json
from tests.support.in_process import settings_for

COMMITTED = Path(__file__).resolve().parents[2] / "openapi.json"
REGENERATE = "vae openapi > openapi.json"


def test_the_committed_document_matches_the_app(tmp_path: Path) -> None:
    app = create_app(settings_for(tmp_path / "models", tmp_path / "data"))
    assert COMMITTED.read_text() == openapi_json(app), f"openapi.json is stale: {REGENERATE}"


def test_vae_openapi_prints_the_committed_document() -> None:
    result = CliRunner().invoke(cli, ["openapi"])
    assert result.exit_code == 0, result.output
    assert result.output == COMMITTED.read_text()


def test_the_document_lists_the_public_operations() -> None:
    paths = json.loads(COMMITTED.read_text())["paths"]
    for path in ("/encode", "/decode", "/sample", "/interpolate", "/jobs", "/models/{name}"):
        assert path in paths, path
