"""An upload cut by a crash leaves nothing once the service starts again; an upload a live server
is receiving is never swept by another replica starting on the same data directory. Real `vae
serve` processes, one killed with SIGKILL in the middle of a body."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support.dataset_builders import digits, npz_bytes
from tests.support.processes import ServiceProcess, running_service, wait_until

TOKEN = "upload-sweep-token"


class SlowUpload:
    """A PUT whose body sends its first half, then waits for `release` before the rest."""

    def __init__(self, service: ServiceProcess, name: str, body: bytes) -> None:
        self.release = threading.Event()
        self.status: int | None = None
        self._body = body
        self._thread = threading.Thread(target=self._send, args=(service.url, name), daemon=True)
        self._thread.start()

    def _chunks(self) -> Iterator[bytes]:
        half = len(self._body) // 2
        yield self._body[:half]
        self.release.wait(60)
        yield self._body[half:]

    def _send(self, url: str, name: str) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        try:
            reply = httpx.put(f"{url}/datasets/{name}", content=self._chunks(), headers=headers)
            self.status = reply.status_code
        except httpx.HTTPError:
            self.status = -1  # the server died under it

    def finish(self) -> int | None:
        self.release.set()
        self._thread.join(30)
        return self.status


def staging(datasets: Path) -> list[str]:
    return sorted(p.name for p in datasets.glob(".staging-*"))


def test_an_upload_cut_by_a_crash_is_swept_at_the_next_start_and_a_live_one_never(
    models_dir: Path, tmp_path: Path
) -> None:
    env = {
        "VAE_MODELS_DIR": str(models_dir),
        "VAE_DATA_DIR": str(tmp_path / "data"),
        "VAE_ADMIN_TOKEN": TOKEN,
    }
    datasets = tmp_path / "data" / "datasets"
    body = npz_bytes(images=digits()[0])
    with running_service(env, tmp_path) as first:
        cut = SlowUpload(first, "cut", body)
        wait_until(lambda: staging(datasets), 30, what="the upload's staging")
        first.process.kill()
        first.process.wait(10)
        cut.finish()
    assert staging(datasets), "the crash left the upload's staging behind"
    with running_service(env, tmp_path) as second:
        assert staging(datasets) == []  # swept before the server was ready
        live = SlowUpload(second, "live", body)
        wait_until(lambda: staging(datasets), 30, what="the live upload's staging")
        with running_service(env, tmp_path):  # a replica starts and sweeps the same directory
            assert len(staging(datasets)) == 1
        assert live.finish() == 201
        with second.client() as http:
            assert http.get("/datasets/live").status_code == 200
    assert staging(datasets) == []
