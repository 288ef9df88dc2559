"""The object-store repository, the replica's cache of it, `copy` and the object-store dataset
store, against a real S3 server (SeaweedFS on loopback): commits are create-only, numbers are
never issued twice, a failed publish leaves no version, the cache is checked by sha256 and keeps
serving while the store is down."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from app.config import Settings
from app.datasets.arrays import load_arrays
from app.datasets.objects import UPLOAD_SPOOL, ObjectDatasetStore
from app.datasets.store import DatasetExists, DatasetNotFound
from app.main import create_app
from app.repository.copying import copy_repository, seed
from app.repository.manifest import ImageSpec, Manifest
from app.repository.mirror import CachedRepository
from app.repository.object_repository import ObjectModelRepository
from app.repository.store import ModelNotFound, ModelRepository
from app.serving.registry import ModelRegistry
from app.storage.locations import ObjectUrl
from app.storage.objects import PART_BYTES, ObjectExists, ObjectStoreUnavailable
from tests.support.dataset_builders import idx_zip
from tests.support.in_process import serving, settings_for
from tests.support.paths import ROOT, SHIPPED_MODELS
from tests.support.processes import wait_until
from tests.support.seaweedfs import SeaweedFS, seaweedfs_running


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS for the module; each test works under a prefix of its own."""
    with seaweedfs_running(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def store_repo(seaweed: SeaweedFS) -> ObjectModelRepository:
    """An empty model repository under a fresh prefix."""
    return ObjectModelRepository(seaweed.store(f"models-{uuid.uuid4().hex[:8]}"))


def manifest() -> Manifest:
    return Manifest(
        name="x", version=0, latent_dim=2, image=ImageSpec(height=4, width=4, channels=1),
        likelihood="bernoulli", created_at=datetime.now(UTC).isoformat(),
    )  # fmt: skip


def publish(repository: ObjectModelRepository, name: str, payload: bytes = b"graph") -> int:
    staging = repository.staging_dir(name)
    (staging / "encoder.onnx").write_bytes(payload)
    (staging / "report").mkdir()
    (staging / "report" / "samples.png").write_bytes(b"png")
    return repository.publish(name, staging, manifest())


def test_publish_uploads_files_then_commits_the_manifest(
    store_repo: ObjectModelRepository,
) -> None:
    assert publish(store_repo, "m") == 1
    assert publish(store_repo, "m") == 2
    assert store_repo.names() == ["m"]
    assert store_repo.versions("m") == [1, 2]
    assert store_repo.default_version("m") == 2
    stored = store_repo.manifest("m", 2)
    assert (stored.name, stored.version) == ("m", 2)
    assert stored.files == {
        "encoder.onnx": hashlib.sha256(b"graph").hexdigest(),
        "report/samples.png": hashlib.sha256(b"png").hexdigest(),
    }
    with pytest.raises(ObjectExists):  # the commit is create-only: a version is written once
        store_repo._commit("m", 2, b"{}")
    store_repo.set_default("m", 1)
    assert store_repo.default_version("m") == 1
    with pytest.raises(ModelNotFound):
        store_repo.set_default("m", 7)


def test_publishers_racing_get_distinct_numbers(store_repo: ObjectModelRepository) -> None:
    versions: list[int] = []
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            versions.append(publish(store_repo, "race", f"graph {i}".encode()))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert sorted(versions) == [1, 2, 3, 4, 5, 6]
    assert store_repo.versions("race") == [1, 2, 3, 4, 5, 6]
    for version in versions:  # each version holds its own publisher's files
        files = store_repo.manifest("race", version).files
        assert len(files) == 2


def test_numbers_are_never_issued_twice_even_after_a_delete(
    store_repo: ObjectModelRepository,
) -> None:
    assert publish(store_repo, "m") == 1
    assert publish(store_repo, "m") == 2
    store_repo.delete_version("m", 2)
    assert store_repo.versions("m") == [1]
    assert store_repo.store.objects("m/2/") == []
    assert publish(store_repo, "m") == 3
    with pytest.raises(ModelNotFound):
        store_repo.delete_version("m", 2)


def test_a_publish_that_fails_midway_leaves_no_version(
    store_repo: ObjectModelRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert publish(store_repo, "m") == 1
    real_upload = store_repo.store.upload
    calls = []

    def failing(key: str, path: Path) -> None:
        calls.append(key)
        if len(calls) == 2:
            raise ObjectStoreUnavailable("the object store is unavailable: injected")
        real_upload(key, path)

    monkeypatch.setattr(store_repo.store, "upload", failing)
    staging = store_repo.staging_dir("m")
    (staging / "encoder.onnx").write_bytes(b"a")
    (staging / "decoder.onnx").write_bytes(b"b")
    with pytest.raises(ObjectStoreUnavailable):
        store_repo.publish("m", staging, manifest())
    assert not staging.exists()
    assert store_repo.versions("m") == [1]
    assert store_repo.default_version("m") == 1
    assert store_repo.store.objects("m/2/") == []  # the uploaded half was removed
    monkeypatch.undo()
    assert publish(store_repo, "m") == 3  # 2 was claimed: it is spent, never reissued


def _commits_answered(
    store_repo: ObjectModelRepository, monkeypatch: pytest.MonkeyPatch, *, lands: bool
) -> None:
    """Every create-only put of a manifest fails as if the store timed out: after applying it
    (`lands`), or before."""
    real_put = store_repo.store.put

    def put(key: str, data: bytes, *, create: bool = False) -> str | None:
        if key.endswith("/manifest.json"):
            if lands:
                real_put(key, data, create=create)
            raise ObjectStoreUnavailable("the object store is unavailable: timed out")
        return real_put(key, data, create=create)

    monkeypatch.setattr(store_repo.store, "put", put)


def test_a_commit_whose_answer_was_lost_is_found_committed(
    store_repo: ObjectModelRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commits_answered(store_repo, monkeypatch, lands=True)
    assert publish(store_repo, "m") == 1
    assert store_repo.versions("m") == [1]
    assert [o.key for o in store_repo.store.objects("m/1/")] == [
        "m/1/encoder.onnx", "m/1/manifest.json", "m/1/report/samples.png",
    ]  # fmt: skip


def test_a_commit_that_failed_leaves_its_files_for_the_sweep(
    store_repo: ObjectModelRepository, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commits_answered(store_repo, monkeypatch, lands=False)
    with pytest.raises(ObjectStoreUnavailable):
        publish(store_repo, "m")
    assert store_repo.versions("m") == []
    # the put might still land: its files stay until the sweep finds them uncommitted and old
    assert len(store_repo.store.objects("m/1/")) == 2
    assert store_repo.sweep_store(older_than_s=0) == [f"{store_repo.store}/m/1/"]


def test_a_large_file_goes_up_in_parts(store_repo: ObjectModelRepository, tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(np.random.default_rng(0).bytes(2 * PART_BYTES + 1000))
    store_repo.store.upload("big.bin", big)
    info = store_repo.store.head("big.bin")
    assert info.size == big.stat().st_size
    assert info.etag is not None and info.etag.strip('"').endswith("-3")  # three parts
    back = tmp_path / "back.bin"
    store_repo.store.download("big.bin", back)
    assert back.read_bytes() == big.read_bytes()


def test_copy_both_ways_keeps_versions_default_and_bytes(
    store_repo: ObjectModelRepository, tmp_path: Path
) -> None:
    source = ModelRepository(tmp_path / "src")
    shutil.copytree(SHIPPED_MODELS / "mnist", source.root / "mnist")
    assert copy_repository(source, store_repo) == ["mnist:1"]
    assert copy_repository(source, store_repo) == []  # nothing new the second time
    assert store_repo.versions("mnist") == [1]
    assert store_repo.default_version("mnist") == 1
    assert store_repo.last_issued("mnist") == 1
    back = ModelRepository(tmp_path / "back")
    assert copy_repository(store_repo, back) == ["mnist:1"]

    def tree(root: Path) -> dict[str, bytes]:
        return {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "DEFAULT"
        }

    assert tree(back.version_dir("mnist", 1)) == tree(source.version_dir("mnist", 1))
    assert back.default_version("mnist") == 1
    assert back.last_issued("mnist") == 1


def test_an_empty_store_is_seeded_once(store_repo: ObjectModelRepository) -> None:
    shipped = ModelRepository(SHIPPED_MODELS)
    everything = [f"{name}:{v}" for name in shipped.names() for v in shipped.versions(name)]
    assert "mnist:1" in everything
    assert sorted(seed(store_repo, SHIPPED_MODELS)) == sorted(everything)
    assert seed(store_repo, SHIPPED_MODELS) == []
    assert store_repo.names() == shipped.names()


def test_the_cache_follows_the_store_and_checks_hashes(
    store_repo: ObjectModelRepository, tmp_path: Path
) -> None:
    cache = CachedRepository(tmp_path / "cache", store_repo)
    publish(store_repo, "m")
    publish(store_repo, "m", b"second")
    cache.sync()
    assert cache.versions("m") == [1, 2]
    assert cache.default_version("m") == 2
    assert (cache.version_dir("m", 2) / "encoder.onnx").read_bytes() == b"second"
    assert cache.status()["status"] == "ok"
    # a version whose stored file does not match its manifest is refused, not cached
    publish(store_repo, "m", b"third")
    store_repo.store.put("m/3/encoder.onnx", b"tampered")
    cache.sync()
    assert cache.versions("m") == [1, 2]
    # DEFAULT moved in the store, a version deleted there: both follow
    store_repo.set_default("m", 1)
    store_repo.delete_version("m", 2)
    cache.sync()
    assert cache.versions("m") == [1]
    assert cache.default_version("m") == 1
    # admin writes go to the store
    publish(store_repo, "m", b"fourth")
    cache.sync()
    cache.set_default("m", 4)
    assert store_repo.default_version("m") == 4
    assert cache.default_version("m") == 4


def test_the_cache_serves_on_while_the_store_is_down(tmp_path: Path) -> None:
    with seaweedfs_running(tmp_path / "own") as server:
        repository = ObjectModelRepository(server.store("models"))
        publish(repository, "m")
        cache = CachedRepository(tmp_path / "cache", repository)
        cache.sync()
        server.stop()
        with pytest.raises(ObjectStoreUnavailable):
            cache.sync()
        status = cache.status()
        assert status["status"] == "degraded"
        assert "unavailable" in status["error"]
        assert cache.versions("m") == [1]  # what it holds, it still has
        # a replica restarting on that cache (the store still down) starts from it
        again = CachedRepository(tmp_path / "cache", repository)
        with pytest.raises(ObjectStoreUnavailable):
            again.sync()
        assert again.versions("m") == [1]
        assert again.status()["status"] == "degraded"
        server.start()
        wait_until(lambda: again.sync() is None, 30, what="the cache to sync again")
        assert again.status()["status"] == "ok"


def test_requests_for_a_name_the_cache_holds_but_cannot_serve_do_not_each_pull_the_store(
    store_repo: ObjectModelRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = CachedRepository(tmp_path / "cache", store_repo)
    pulls: list[float] = []
    sync = cache.sync
    monkeypatch.setattr(cache, "sync", lambda: (pulls.append(time.monotonic()), sync())[1])
    monkeypatch.setattr("app.serving.registry.PULL_ON_DEMAND_S", 3600.0)
    (tmp_path / "cache" / "ghost").mkdir(parents=True)  # e.g. a version refused on its sha256
    registry = ModelRegistry(cache, Settings(_env_file=None, reload_interval_s=0))  # type: ignore[call-arg]

    async def requests() -> None:
        await registry.start()
        for _ in range(10):
            with pytest.raises(ModelNotFound):
                await registry.resolve("ghost")
        await registry.stop()

    asyncio.run(requests())
    assert len(pulls) == 1  # the start's; the requests wait for the next pull that is due


def test_a_replica_behind_the_store_does_not_delete_what_another_made_default(
    seaweed: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"models-{uuid.uuid4().hex[:8]}"
    store_repo = ObjectModelRepository(seaweed.store(prefix))
    publish(store_repo, "m")
    publish(store_repo, "m")  # DEFAULT: 2
    for key, value in seaweed.env().items():
        monkeypatch.setenv(key, value)
    settings = settings_for(
        seaweed.url(prefix),  # type: ignore[arg-type]
        tmp_path / "data",
        models_cache_dir=tmp_path / "cache",
        s3_endpoint_url=seaweed.endpoint,
    )

    async def admin() -> int:
        async with serving(create_app(settings)) as http:  # its copy says DEFAULT 2
            store_repo.set_default("m", 1)  # another replica moves it, in the store
            return (await http.delete("/models/m/versions/1")).status_code

    assert asyncio.run(admin()) == 409
    assert store_repo.versions("m") == [1, 2]


def test_the_local_disk_failing_is_not_the_store_being_down(
    store_repo: ObjectModelRepository, tmp_path: Path
) -> None:
    publish(store_repo, "m")
    (tmp_path / "not-a-directory").write_bytes(b"")
    with pytest.raises(OSError) as raised:  # a download into a place it cannot write
        store_repo.store.download("m/1/encoder.onnx", tmp_path / "not-a-directory" / "x")
    assert not isinstance(raised.value, ObjectStoreUnavailable)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "m").write_bytes(b"")  # where the model's directory should go
    cache = CachedRepository(tmp_path / "cache", store_repo)
    with pytest.raises(OSError):
        cache.sync()
    status = cache.status()
    assert status["status"] == "degraded", status  # not 'ok' while every pull fails
    assert "could not be written" in status["error"], status


def test_a_damaged_cache_is_dropped_at_start(
    store_repo: ObjectModelRepository, tmp_path: Path
) -> None:
    publish(store_repo, "m")
    CachedRepository(tmp_path / "cache", store_repo).sync()
    (tmp_path / "cache" / "m" / "1" / "encoder.onnx").write_bytes(b"half")
    restarted = CachedRepository(tmp_path / "cache", store_repo)
    restarted.sync()  # drops the damaged copy, then fetches it again
    assert (restarted.version_dir("m", 1) / "encoder.onnx").read_bytes() == b"graph"


def test_datasets_stream_to_the_store_and_names_are_write_once(
    seaweed: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the spools: the sweep's business
    store = ObjectDatasetStore(seaweed.store(f"data-{uuid.uuid4().hex[:8]}"), tmp_path / "copies")

    def put(name: str, data: bytes) -> object:
        upload = store.begin(name, limit=1 << 20)
        for start in range(0, len(data), 1000):
            upload.write(data[start : start + 1000])
        return store.commit(name, upload)

    data = idx_zip()
    manifest = put("digits", data)
    assert store.names() == ["digits"]
    assert store.manifest("digits") == manifest
    assert store.exists("digits")
    assert load_arrays(store.path("digits")).images.shape[0] == 12
    with pytest.raises(DatasetExists):
        put("digits", data)
    # the loser left nothing behind: one manifest, one array file
    assert len(store.store.objects("digits/")) == 2
    store.delete("digits")
    assert store.names() == []
    assert store.store.objects("digits/") == []
    with pytest.raises(DatasetNotFound):
        store.path("digits")
    assert store.sweep(older_than_s=0) == 0


def test_a_worker_keeps_one_copy_of_a_dataset_uploaded_again(
    seaweed: SeaweedFS, tmp_path: Path
) -> None:
    api = ObjectDatasetStore(seaweed.store(f"data-{uuid.uuid4().hex[:8]}"), tmp_path / "api")
    worker = ObjectDatasetStore(api.store, tmp_path / "worker")  # another host's copies

    def put(name: str) -> None:
        upload = api.begin(name, limit=1 << 20)
        upload.write(idx_zip())
        api.commit(name, upload)

    put("digits")
    first = worker.path("digits")
    api.delete("digits")  # through an api: the worker's host does not hear of it
    put("digits")
    second = worker.path("digits")
    assert second != first and second.is_file()
    assert sorted(p.name for p in second.parent.iterdir()) == [second.name]


def test_the_spool_of_an_upload_cut_short_is_swept_when_old(
    seaweed: SeaweedFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    store = ObjectDatasetStore(seaweed.store(f"data-{uuid.uuid4().hex[:8]}"), tmp_path / "copies")
    left = tmp_path / f"{UPLOAD_SPOOL}died"  # what an api killed mid-upload leaves
    left.mkdir()
    (left / "upload").write_bytes(b"half an upload")
    assert store.sweep(older_than_s=3600) == 0 and left.exists()  # may still be going
    assert store.sweep(older_than_s=0) == 1 and not left.exists()


def test_settings_take_a_directory_or_an_s3_url(tmp_path: Path) -> None:
    settings = Settings(models_dir="s3://bucket/some/prefix/", data_dir=str(tmp_path))
    assert settings.models_dir == ObjectUrl("bucket", "some/prefix")
    assert str(settings.models_dir) == "s3://bucket/some/prefix"
    assert settings.data_dir == tmp_path
    with pytest.raises(ValueError):
        Settings(models_dir="s3:///no-bucket")


def test_vae_repository_copy_both_ways(seaweed: SeaweedFS, tmp_path: Path) -> None:
    url = seaweed.url(f"copied-{uuid.uuid4().hex[:8]}")
    env = {**os.environ, **seaweed.env()}

    def vae(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "repository", "copy", *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "mnist:1" in vae(str(SHIPPED_MODELS), url)
    assert "nothing new" in vae(str(SHIPPED_MODELS), url)
    assert "mnist:1" in vae(url, str(tmp_path / "back"))
    back = ModelRepository(tmp_path / "back")
    assert back.versions("mnist") == [1]
    assert back.manifest("mnist", 1) == ModelRepository(SHIPPED_MODELS).manifest("mnist", 1)


def test_a_replica_seeds_an_empty_store_on_its_first_pull(
    store_repo: ObjectModelRepository, tmp_path: Path
) -> None:
    cache = CachedRepository(tmp_path / "cache", store_repo, SHIPPED_MODELS)
    cache.sync()
    assert store_repo.versions("mnist") == [1]
    assert cache.versions("mnist") == [1]
    for name in store_repo.names():  # deleted stays deleted: the numbers were issued
        for version in store_repo.versions(name):
            store_repo.delete_version(name, version)
    other = CachedRepository(tmp_path / "other", store_repo, SHIPPED_MODELS)
    other.sync()
    assert store_repo.names() == [] and other.names() == []


def test_a_seed_that_failed_halfway_is_finished_at_the_next_pull(
    store_repo: ObjectModelRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upload = store_repo.store.upload
    uploads: list[str] = []

    def blinking(key: str, path: Path) -> None:  # the store goes away at the second file
        uploads.append(key)
        if len(uploads) == 2:
            raise ObjectStoreUnavailable("the object store is unavailable: connection reset")
        upload(key, path)

    monkeypatch.setattr(store_repo.store, "upload", blinking)
    cache = CachedRepository(tmp_path / "cache", store_repo, SHIPPED_MODELS)
    with pytest.raises(ObjectStoreUnavailable):
        cache.sync()
    assert store_repo.names() == []  # nothing half-published, the number claimed
    assert store_repo.last_issued("mnist") == 1
    cache.sync()  # the same replica's next pull (another replica's would do as well)
    assert store_repo.versions("mnist") == [1]  # the shipped number, not the next one
    assert store_repo.manifest("mnist", 1) == ModelRepository(SHIPPED_MODELS).manifest("mnist", 1)
    assert cache.versions("mnist") == [1]


def test_replicas_seeding_at_once_publish_each_version_once(
    store_repo: ObjectModelRepository,
) -> None:
    results: list[list[str]] = []
    threads = [
        threading.Thread(target=lambda: results.append(seed(store_repo, SHIPPED_MODELS)))
        for _ in range(3)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    copied = {entry for result in results for entry in result if not entry.endswith("DEFAULT")}
    shipped = ModelRepository(SHIPPED_MODELS)
    assert copied == {f"{n}:{v}" for n in shipped.names() for v in shipped.versions(n)}
    for name in shipped.names():  # the shipped numbers, no other issued
        assert store_repo.versions(name) == shipped.versions(name)
        assert store_repo.last_issued(name) == max(shipped.versions(name))


def test_a_store_someone_published_to_is_not_seeded(store_repo: ObjectModelRepository) -> None:
    publish(store_repo, "mine")
    assert seed(store_repo, SHIPPED_MODELS) == []
    assert store_repo.names() == ["mine"]


def test_a_refused_commit_publishes_nothing_and_leftovers_are_swept(
    store_repo: ObjectModelRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # local staging goes there

    class Cancelled(Exception):
        pass

    told: list[int] = []

    def refuse(version: int) -> None:  # told the number it was about to commit
        told.append(version)
        raise Cancelled

    owner = uuid.uuid4().hex
    staging = store_repo.staging_dir("m", owner)
    (staging / "encoder.onnx").write_bytes(b"graph")
    with pytest.raises(Cancelled):  # a cancel claimed the job's gate first
        store_repo.publish("m", staging, manifest(), before_commit=refuse)
    assert told == [1] and store_repo.versions("m") == []
    assert store_repo.store.objects("m/1/") == []  # the uploaded file was removed
    assert not staging.exists()
    # a job that died left its local staging directory and, in the store, uncommitted files
    left = store_repo.staging_dir("m", owner)
    store_repo.store.put("m/9/encoder.onnx", b"half")
    assert store_repo.sweep(lambda job: job == owner, older_than_s=3600) == []
    removed = store_repo.sweep(lambda job: False, older_than_s=0)
    assert str(left) in removed and not left.exists()
    assert store_repo.store.objects("m/9/") != []  # the store's side is sweep_store's
    assert store_repo.sweep_store(older_than_s=3600) == []
    assert len(store_repo.sweep_store(older_than_s=0)) == 1
    assert store_repo.store.objects("m/9/") == []
    assert store_repo.discard_owned(owner) == 0


def test_a_worker_s_own_process_never_connects_before_it_forks(seaweed: SeaweedFS) -> None:
    """obstore's runtime does not survive fork: what the RQ worker does in its own process
    (open the repository, sweep and discard staging directories) makes no request."""
    repository = ObjectModelRepository(seaweed.store("models-fork"))
    repository.sweep(lambda job: True)
    repository.discard_owned(uuid.uuid4().hex)
    assert repository.store._client is None
