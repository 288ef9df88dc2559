"""The registry serves only what it verified, in process: a tampered graph is refused and says
why, a default that cannot load is never written, and one model's odd folder or unreadable file
never stops the others (issue 27)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from app.main import create_app
from app.repository.object_repository import _parse_listing
from app.repository.store import version_number
from app.storage.objects import ObjectInfo
from tests.support.in_process import serving, settings_for
from tests.support.repositories import copy_version, mnist_repo

# A valid ModelProto field (6: doc_string, "tampered"): ONNX Runtime loads the graph as before,
# so only the sha256 can tell the file is not the one published.
DOC_STRING = b"\x32\x08tampered"


def _app(repo: Path, tmp_path: Path, **overrides: Any) -> Any:
    return create_app(settings_for(repo, tmp_path / "data", **overrides))


async def _version(http: httpx.AsyncClient, model: str | None = None) -> int:
    body: dict[str, Any] = {"n": 1, "seed": 0, **({"model": model} if model else {})}
    answer = await http.post("/sample", json=body)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["version"])


def _load_error(described: dict[str, Any], version: int) -> str | None:
    return next(v["load_error"] for v in described["versions"] if v["version"] == version)


def _refusals(reason: str) -> float:
    name = "vae_model_verification_failures_total"
    return REGISTRY.get_sample_value(name, {"reason": reason}) or 0.0


@pytest.mark.parametrize("tampered", ["decoder.onnx", "weights.safetensors"])
def test_a_tampered_file_is_refused_and_the_default_keeps_serving(
    models_dir: Path, tmp_path: Path, tampered: str
) -> None:
    repo = mnist_repo(models_dir, tmp_path)
    app = _app(repo, tmp_path)
    before = _refusals("mismatch")

    async def scenario() -> None:
        async with serving(app) as http:
            assert await _version(http) == 1
            copy_version(repo, 1, 2)  # published, and made the default on disk
            with open(repo / "mnist" / "2" / tampered, "ab") as file:
                file.write(DOC_STRING)  # serving never reads the weights: only their hash tells
            await app.state.vae.registry.refresh()
            assert await _version(http) == 1
            named = await http.post("/sample", json={"n": 1, "model": "mnist:2"})
            assert named.status_code == 503, named.text
            assert named.json()["error"] == "model_unavailable"
            described = (await http.get("/models/mnist")).json()
            error = _load_error(described, 2)
            assert error is not None and f"{tampered} does not match the sha256" in error
            assert described["default_version"] == 1

    asyncio.run(scenario())
    assert _refusals("mismatch") == before + 1


def test_a_refused_default_leaves_default_as_it_was_and_a_restart_is_ready(
    models_dir: Path, tmp_path: Path
) -> None:
    repo = mnist_repo(models_dir, tmp_path)
    copy_version(repo, 1, 2, break_it=True)
    (repo / "mnist" / "DEFAULT").write_text("1\n")

    async def choose_the_broken_one() -> None:
        async with serving(_app(repo, tmp_path)) as http:
            chosen = await http.post("/models/mnist/default", json={"version": 2})
            assert chosen.status_code == 409, chosen.text
            assert chosen.json()["error"] == "load_failed"
            assert "decoder.onnx" in chosen.json()["message"]
            assert await _version(http) == 1

    async def restart() -> None:
        async with serving(_app(repo, tmp_path)) as http:
            assert (await http.get("/v2/health/ready")).status_code == 200
            assert await _version(http) == 1

    asyncio.run(choose_the_broken_one())
    assert (repo / "mnist" / "DEFAULT").read_text() == "1\n"
    asyncio.run(restart())


def _another_model(repo: Path, name: str) -> Path:
    """A copy of mnist:1 published as `name`:1; returns its version directory."""
    shutil.copytree(repo / "mnist", repo / name)
    manifest = repo / name / "1" / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"name": "mnist"', f'"name": "{name}"'))
    return repo / name / "1"


def test_a_non_ascii_digit_folder_leaves_every_model_served(
    models_dir: Path, tmp_path: Path
) -> None:
    repo = mnist_repo(models_dir, tmp_path)
    odd = _another_model(repo, "odd")
    shutil.copytree(odd, odd.with_name("²"))  # str.isdigit() says yes, int() says no

    async def scenario() -> None:
        async with serving(_app(repo, tmp_path)) as http:
            listed = await http.get("/models")
            assert listed.status_code == 200, listed.text
            odd_model = next(m for m in listed.json()["models"] if m["name"] == "odd")
            assert [v["version"] for v in odd_model["versions"]] == [1]
            assert await _version(http) == 1
            assert await _version(http, "odd") == 1
            named = await http.post("/sample", json={"n": 1, "model": "odd:²"})
            assert named.status_code == 404, named.text

    asyncio.run(scenario())


@contextlib.contextmanager
def _released(fifo: Path, after_s: float) -> Iterator[threading.Event]:
    """Ends, after `after_s` and at the latest on the way out, any read of `fifo` still waiting
    (a writer opens and closes it: the reader sees its end), so that a loader stuck on it cannot
    hang the test run for good. The event says whether a reader had to be released."""
    released = threading.Event()

    def release() -> None:
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # ENXIO: nobody reading
            released.set()
        except OSError:
            pass

    timer = threading.Timer(after_s, release)
    timer.start()
    try:
        yield released
    finally:
        timer.cancel()
        release()


def test_a_graph_that_never_finishes_reading_leaves_every_other_model_served(
    models_dir: Path, tmp_path: Path
) -> None:
    repo = mnist_repo(models_dir, tmp_path)
    _another_model(repo, "other")
    stuck = _another_model(repo, "stuck")
    (stuck / "encoder.onnx").unlink()
    os.mkfifo(stuck / "encoder.onnx")  # a reader waits for a writer that never comes

    async def scenario(released: threading.Event) -> None:
        async with serving(_app(repo, tmp_path, file_read_timeout_s=1.0)) as http:
            assert not released.is_set(), "the loader waited on the FIFO until it was released"
            assert (await http.get("/models")).status_code == 200
            assert await _version(http) == 1
            assert await _version(http, "other") == 1
            named = await http.post("/sample", json={"n": 1, "model": "stuck"})
            assert named.status_code in (404, 503), named.text
            named = await http.post("/sample", json={"n": 1, "model": "stuck:1"})
            assert named.status_code == 503, named.text
            assert named.json()["error"] == "model_unavailable"
            error = _load_error((await http.get("/models/stuck")).json(), 1)
            assert error is not None and "encoder.onnx" in error

    with _released(stuck / "encoder.onnx", after_s=60.0) as released:
        asyncio.run(scenario(released))


@pytest.mark.parametrize(
    ("text", "number"),
    [("1", 1), ("12", 12), ("²", None), ("\u0661", None), ("012", None), ("1a", None), ("", None)],
)
def test_a_version_is_ascii_digits_as_the_repository_writes_them(
    text: str, number: int | None
) -> None:
    assert version_number(text) == number


def test_an_object_store_key_with_a_non_ascii_digit_is_skipped() -> None:
    keys = ["mnist/1/manifest.json", "mnist/²/manifest.json", "mnist/claims/²", "mnist/claims/1"]
    listing = _parse_listing([ObjectInfo(key, 0, "etag") for key in keys])
    assert list(listing["mnist"].manifests) == [1] and listing["mnist"].claims == {1}
