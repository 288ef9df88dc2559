"""Rules of the test suite itself: a unit test that starts a process fails (the guard in
tests/unit/conftest.py), and no test module imports from a conftest (what tests share is in
tests/support)."""

from __future__ import annotations

import ast
import asyncio
import multiprocessing
import os
import subprocess
import sys
from collections.abc import Callable

import pytest

from tests.support.paths import ROOT


def fork_and_reap() -> None:
    pid = os.fork()
    if pid == 0:  # the guard failed: the child must not go on running the suite
        os._exit(0)
    os.waitpid(pid, 0)


def asyncio_subprocess() -> None:
    async def start() -> None:
        process = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
        await process.wait()

    asyncio.run(start())


def multiprocessing_spawn() -> None:
    process = multiprocessing.get_context("spawn").Process(target=print)
    process.start()
    process.join()


@pytest.mark.parametrize(
    "start",
    [
        lambda: subprocess.run([sys.executable, "-c", "pass"], check=False),
        lambda: subprocess.Popen(["true"]).wait(),
        lambda: os.system("true"),
        lambda: os.posix_spawn("/bin/true", ["true"], {}),
        fork_and_reap,
        asyncio_subprocess,
        multiprocessing_spawn,
    ],
    ids=["subprocess.run", "Popen", "os.system", "posix_spawn", "fork", "asyncio", "spawn"],
)
def test_starting_a_process_in_a_unit_test_fails_the_test(start: Callable[[], object]) -> None:
    with pytest.raises(pytest.fail.Exception, match="a unit test starts no process"):
        start()


@pytest.fixture(scope="module")
def refused_in_a_module_fixture() -> str:
    with pytest.raises(pytest.fail.Exception) as refused:
        subprocess.run(["true"], check=False)
    return str(refused.value)


@pytest.fixture(scope="session")
def refused_in_a_session_fixture() -> str:
    with pytest.raises(pytest.fail.Exception) as refused:
        subprocess.run(["true"], check=False)
    return str(refused.value)


def test_fixtures_of_every_scope_are_refused_too(
    refused_in_a_module_fixture: str, refused_in_a_session_fixture: str
) -> None:
    assert "a unit test starts no process" in refused_in_a_module_fixture
    assert "a unit test starts no process" in refused_in_a_session_fixture


def test_no_test_module_imports_from_a_conftest() -> None:
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
                modules += [f"{node.module or ''}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            else:
                continue
            if any("conftest" in module.split(".") for module in modules):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"import what tests share from tests/support, not a conftest: {found}"
