"""The shape of the code that docs/ARCHITECTURE.md promises, read from the source itself: the HTTP
layer never asks what kind a model is, no function grows past a screen, and the architecture page
names every module of `app/`."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"
MAX_FUNCTION_LINES = 60

# What a model's kind is told by: asking any of these in app/api is a branch on the kind, which
# belongs in the kind's adapter (app/serving/adapters).
KIND_ATTRIBUTES = frozenset(
    {
        "spatial",
        "vq",
        "noise_dim",
        "conditional",
        "has_code_prior",
        "prior_meaningful",
        "encoding",
        "sampler",
        "evaluator",
        "trainable",
    }
)
COMPARISONS = frozenset({"==", "!=", "in"})


def _python_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*.py") if "__pycache__" not in path.parts)


def _code_tokens(path: Path) -> list[tokenize.TokenInfo]:
    """The tokens of a module that are code: no strings, comments or layout."""
    skip = {tokenize.STRING, tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE}
    skip |= {tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING}
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    return [token for token in tokens if token.type not in skip]


def _shown(path: Path) -> str:
    return path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)


def _call_names(tokens: list[tokenize.TokenInfo], start: int) -> list[str]:
    """The names inside the parentheses of a call whose "(" is tokens[start]."""
    depth, names = 0, []
    for token in tokens[start:]:
        depth += {"(": 1, ")": -1}.get(token.string, 0)
        if token.type == tokenize.NAME:
            names.append(token.string)
        if depth == 0:
            break
    return names


def _names_a_kind(name: str) -> bool:
    """A class that stands for a model kind or family (an adapter, a kind row, a graph set)."""
    return name.endswith(("Adapter", "Kind", "Graphs", "Parts")) or name in {"VQParts"}


def kind_branches(path: Path) -> Iterator[str]:
    """Every place in a module that asks what kind a model is: an attribute named in
    KIND_ATTRIBUTES, `.kind` compared with something, or an isinstance() check against a class
    that stands for a kind (an adapter, a kind row)."""
    tokens = _code_tokens(path)
    for index, token in enumerate(tokens[1:], start=1):
        where = f"{_shown(path)}:{token.start[0]}"
        after_dot = tokens[index - 1].string == "."
        following = tokens[index + 1].string if index + 1 < len(tokens) else ""
        if after_dot and token.string in KIND_ATTRIBUTES:
            yield f"{where}: .{token.string}"
        elif after_dot and token.string == "kind" and following in COMPARISONS:
            yield f"{where}: .kind {following}"
        elif token.string == "isinstance" and any(
            _names_a_kind(name) for name in _call_names(tokens, index + 1)
        ):
            yield f"{where}: isinstance()"


def long_functions(path: Path) -> Iterator[str]:
    """Every function of a module longer than MAX_FUNCTION_LINES, decorators left out."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines = (node.end_lineno or node.lineno) - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
                yield f"{_shown(path)}:{node.lineno} {node.name}() is {lines} lines"


def app_modules() -> dict[str, list[str]]:
    """Every module of app/ by the row of the architecture page's table that must name it:
    `app/<package>` for a package's modules (named by their path below the package, e.g.
    `cache/redis_cache`, or by their own name), `app/<module>.py` for a top-level module."""
    rows: dict[str, list[str]] = {}
    for path in _python_files(APP):
        relative = path.relative_to(APP)
        if path.name == "__init__.py" and len(relative.parts) <= 2:
            continue  # a package (its row) or app itself
        if len(relative.parts) == 1:
            rows.setdefault(f"app/{relative.as_posix()}", []).append(path.stem)
            continue
        below = relative.relative_to(relative.parts[0]).with_suffix("").as_posix()
        rows.setdefault(f"app/{relative.parts[0]}", []).append(below)
    return rows


def architecture_rows() -> dict[str, str]:
    """The table's rows by their first cell (`app/serving`, `app/main.py`, ...)."""
    rows = {}
    for line in ARCHITECTURE.read_text().splitlines():
        first = re.match(r"\|\s*`(app/[^`]+)`\s*\|", line)
        if first:
            rows[first.group(1).rstrip("/")] = line
    return rows


def test_the_http_layer_never_branches_on_a_models_kind() -> None:
    found = [place for path in _python_files(APP / "api") for place in kind_branches(path)]
    assert not found, "kind checks belong in the kind's adapter:\n" + "\n".join(found)


def test_no_function_in_app_is_longer_than_a_screen() -> None:
    found = [place for path in _python_files(APP) for place in long_functions(path)]
    assert not found, "\n".join(found)


def _named_in(row: str) -> set[str]:
    return {name.rstrip("/") for name in re.findall(r"`([a-z_][a-z0-9_/]*?)(?:\.py)?`", row)}


def cli_commands() -> list[str]:
    """Every `vae` command and command group, as `vae <name>` (typer's own listing)."""
    from typer.main import get_command

    from app.cli import app

    group = get_command(app)
    return sorted(f"vae {name}" for name in getattr(group, "commands", {}))


def test_the_architecture_page_names_every_module() -> None:
    rows = architecture_rows()
    missing = []
    for row, modules in app_modules().items():
        if row.endswith(".py"):
            missing += [] if row in rows else [row]
            continue
        named = _named_in(rows.get(row, ""))
        for module in modules:
            short = module.removesuffix("/__init__").rsplit("/", 1)[-1]
            if module.removesuffix("/__init__") not in named and short not in named:
                missing.append(f"{row}/{module}")
    assert not missing, "docs/ARCHITECTURE.md's table does not name:\n" + "\n".join(missing)


def test_the_architecture_page_names_every_command() -> None:
    row = architecture_rows().get("app/cli.py", "")
    missing = [command for command in cli_commands() if command.split()[1] not in row]
    assert not missing, "the app/cli.py row does not name: " + ", ".join(missing)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("if model.manifest.spatial is not None:\n    pass\n", [".spatial"]),
        ("z = model.vq.latents(codes)\n", [".vq"]),
        ("if manifest.kind == 'vqvae':\n    pass\n", [".kind =="]),
        ("ok = isinstance(adapter, SpatialAdapter)\n", ["isinstance()"]),
        ("ok = isinstance(value, int | float)\n", []),
        ("row = model_kind(manifest.kind).describe()\n", []),
        ('message = "a spatial model takes raw bytes"  # .vq\n', []),
    ],
)
def test_the_kind_check_sees_branches_and_not_prose(
    tmp_path: Path, source: str, expected: list[str]
) -> None:
    module = tmp_path / "probe.py"
    module.write_text(source)
    assert [place.rsplit(": ", 1)[1] for place in kind_branches(module)] == expected
