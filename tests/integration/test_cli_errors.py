"""`vae` given ordinary mistakes (a config that is neither a file nor JSON, a bad name, a
repository path with a typo, a model it does not hold) says why in one line on stderr and exits
1, without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.paths import ROOT, SHIPPED_MODELS


def vae(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("data") / "images.npy"
    np.save(path, np.zeros((4, 28, 28), np.uint8))
    return str(path)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["train", "--name", "a", "--config", "missing.json"], "no such file"),
        (["train", "--name", "a", "--config", "{bad"], "not JSON"),
        (["train", "--name", "bad name!"], "invalid name"),
        (["train", "--name", "a", "--data", "{notes}"], "not a dataset format"),
        (["repository", "copy", "/nonexistent/models", "{target}"], "holds no model"),
        (["repository", "copy", str(SHIPPED_MODELS), "{target}", "--model", "nosuch"], "no model"),
    ],
    ids=["config-file", "config-json", "name", "not-a-dataset", "copy-path", "copy-model"],
)
def test_a_mistake_is_one_line_and_exit_code_1(
    data: str, tmp_path: Path, args: list[str], said: str
) -> None:
    target, notes = tmp_path / "copy", tmp_path / "notes.txt"
    notes.write_text("some notes\n")
    args = [arg.replace("{target}", str(target)).replace("{notes}", str(notes)) for arg in args]
    if args[0] == "train" and "--data" not in args:
        args = [*args, "--data", data]
    done = vae(*args)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error: ") and said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not Path("{target}").exists()
