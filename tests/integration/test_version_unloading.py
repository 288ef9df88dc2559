"""Under a cap of two loaded versions (VAE_MAX_LOADED_VERSIONS=2) and four versions of a model,
concurrent requests naming each version all answer, from the version they named: versions past
the cap are unloaded least recently used and load again on demand, and `vae_models_loaded`
never passes the cap."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx

from tests.support.processes import running_service
from tests.support.repositories import copy_version, mnist_repo

CAP = 2
VERSIONS = 4
ROUNDS = 6


def loaded_now(metrics_text: str) -> int:
    found = re.search(r"^vae_models_loaded (\S+)$", metrics_text, re.MULTILINE)
    assert found is not None, "no vae_models_loaded in /metrics"
    return int(float(found.group(1)))


async def mixed_requests(url: str) -> tuple[list[tuple[int, int, int]], list[int]]:
    """Each round, one request naming each version, all at once, while /metrics is watched:
    (version named, status, version that answered) of each, and every count of loaded seen."""
    seen: list[int] = []
    answers: list[tuple[int, int, int]] = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        done = asyncio.Event()

        async def watch() -> None:
            while not done.is_set():
                seen.append(loaded_now((await http.get("/metrics")).text))
                await asyncio.sleep(0.02)

        async def named(version: int) -> tuple[int, int, int]:
            body = {"model": f"mnist:{version}", "n": 1, "seed": version}
            response = await http.post("/sample", json=body)
            answered = response.json().get("version", -1) if response.status_code == 200 else -1
            return version, response.status_code, answered

        watcher = asyncio.create_task(watch())
        for _ in range(ROUNDS):
            answers += await asyncio.gather(*(named(v) for v in range(1, VERSIONS + 1)))
        done.set()
        await watcher
        seen.append(loaded_now((await http.get("/metrics")).text))
    return answers, seen


def test_every_request_is_served_under_a_cap_of_two_loaded_versions(
    models_dir: Path, tmp_path: Path
) -> None:
    repo = mnist_repo(models_dir, tmp_path)
    for number in range(2, VERSIONS + 1):
        copy_version(repo, 1, number)  # the last one copied is the default
    env = {
        "VAE_MODELS_DIR": str(repo),
        "VAE_DATA_DIR": str(tmp_path / "data"),
        "VAE_MAX_LOADED_VERSIONS": str(CAP),
    }
    with running_service(env, tmp_path) as service:
        answers, seen = asyncio.run(mixed_requests(service.url))
        described = httpx.get(f"{service.url}/models/mnist", timeout=30).json()
        log = service.log.read_text()
    failed = [answer for answer in answers if answer[1] != 200 or answer[0] != answer[2]]
    assert not failed, f"(named, status, answered): {failed}\n{log[-3000:]}"
    assert len(answers) == ROUNDS * VERSIONS
    # Each round named all four, one slot beside the default: each round loaded the other
    # three again, and the count of loaded versions never passed two.
    assert max(seen) <= CAP, seen
    still = [v["version"] for v in described["versions"] if v["loaded"]]
    assert len(still) == CAP and VERSIONS in still  # the default stays
