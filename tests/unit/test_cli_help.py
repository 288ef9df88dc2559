"""`vae --help` and every command's help read cleanly: flags show no type placeholder."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from app.cli import app

COMMANDS = [[], ["serve"], ["worker"], ["train"], ["evaluate"], ["compact"], ["openapi"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "vae")
def test_help_shows_no_bool_placeholder(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "--help" in result.output
    assert "<bool>" not in result.output, result.output


def test_flags_show_both_forms_and_their_default() -> None:
    result = CliRunner().invoke(app, ["worker", "--help"])
    assert "--burst / --no-burst" in result.output, result.output
