"""Each peer in a virtualenv of its own under bench/.venvs/ (gitignored), made on first use.

ONNX Runtime is pinned to the service's own version so every system runs the same kernels.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

VENVS = Path(__file__).resolve().parent.parent / ".venvs"
MARKER = ".bench-requirements"


class PeerUnavailable(RuntimeError):
    """The peer could not be installed or imported here; the message says why."""


@dataclass(frozen=True)
class PeerEnv:
    """How to build one peer's virtualenv."""

    name: str
    requirements: tuple[str, ...]
    check_import: str
    python: str | None = None  # interpreter for the venv; the running one when None

    @property
    def directory(self) -> Path:
        """bench/.venvs/<name>."""
        return VENVS / self.name

    @property
    def bin(self) -> Path:
        """The venv's bin/ folder."""
        return self.directory / "bin"


def _system_python311() -> str | None:
    # PyTriton's Python-backend stub links the distribution's libpython3.11; a venv on another
    # 3.11 build (pyenv's) then loads a stdlib that does not match it and the model fails to load.
    return "/usr/bin/python3.11" if Path("/usr/bin/python3.11").exists() else None


def peer_envs() -> dict[str, PeerEnv]:
    """The peers the bench knows, by name."""
    ort = f"onnxruntime=={version('onnxruntime')}"
    return {
        "triton": PeerEnv(
            "triton", ("nvidia-pytriton", ort, "pillow"), "pytriton", _system_python311()
        ),
        "bentoml": PeerEnv("bentoml", ("bentoml<1.4.40", ort, "pillow"), "bentoml"),
        "litserve": PeerEnv("litserve", ("litserve", ort, "pillow"), "litserve"),
    }


def ensure_peer(env: PeerEnv, log: Path) -> Path:
    """The peer's venv bin/ folder, installing it when missing or out of date.

    Raises PeerUnavailable with pip's last words when the install or the import fails.
    """
    wanted = "\n".join(env.requirements)
    marker = env.directory / MARKER
    python = env.bin / "python"
    if marker.exists() and marker.read_text() == wanted and _imports(python, env.check_import):
        return env.bin
    shutil.rmtree(env.directory, ignore_errors=True)
    env.directory.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        steps = [
            [env.python or sys.executable, "-m", "venv", str(env.directory)],
            [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
            [str(python), "-m", "pip", "install", "--quiet", *env.requirements],
        ]
        for step in steps:
            out.write(f"$ {' '.join(step)}\n")
            out.flush()
            if subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, check=False).returncode:
                raise PeerUnavailable(f"{env.name}: `{' '.join(step[2:])}` failed; see {log}")
    if not _imports(python, env.check_import):
        raise PeerUnavailable(f"{env.name}: installed but `import {env.check_import}` fails")
    marker.write_text(wanted)
    return env.bin


def _imports(python: Path, module: str) -> bool:
    if not python.exists():
        return False
    done = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, check=False)
    return done.returncode == 0
