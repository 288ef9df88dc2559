"""The API side never loads torch: importing the app (and building it) leaves it out of the
process. The package-level rules are import-linter's contracts in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.paths import ROOT

HEAVY = ("torch", "safetensors", "onnx")


def test_importing_and_building_the_app_loads_no_training_code() -> None:
    probe = (
        "import sys\n"
        "from app.config import Settings\n"
        "from app.main import create_app\n"
        "create_app(Settings())\n"
        f"loaded = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "loaded += [m for m in sys.modules if m.startswith('app.training.') and m != 'app.training.config']\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_the_import_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"  # installed by the dev extra
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:]
