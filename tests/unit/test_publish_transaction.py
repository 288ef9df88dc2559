"""Training and publishing as one transaction, in process: a stop at any stage before the commit
point leaves nothing in the repository; past it the version is published and said so, even when
DEFAULT cannot be moved; what dead jobs left is swept away."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

import pytest

from app.repository.store import ModelRepository
from app.training.config import TrainConfig
from app.training.hooks import TrainingCancelled, TrainingHooks
from app.training.pipeline import run_training
from tests.support.synthetic import write_npz

TINY = TrainConfig.model_validate(
    {"epochs": 1, "eval_k": 5, "hidden": [32], "latent_dim": 4, "quality": False}
)
OWNER = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_npz(tmp_path_factory.mktemp("data") / "strokes.npz", 200)


def leftovers(root: Path) -> list[str]:
    """Everything under the repository but published versions, DEFAULT and LAST_VERSION."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if not any(part.isdigit() for part in p.relative_to(root).parts)
        and p.name not in {"DEFAULT", "LAST_VERSION"}
    )


@pytest.mark.parametrize(
    "stop_at", ["training", "exporting", "evaluating", "publishing", "the commit"]
)
def test_a_stop_before_the_commit_point_leaves_nothing(
    data: Path, tmp_path: Path, stop_at: str
) -> None:
    repository = ModelRepository(tmp_path / "models")
    reached: list[str] = []
    committed: list[int] = []
    with pytest.raises(TrainingCancelled):
        run_training(
            TINY,
            data,
            "strokes",
            repository,
            TrainingHooks(
                on_stage=reached.append,
                should_stop=lambda: stop_at in reached,
                claim_commit=lambda version: stop_at != "the commit",
                on_commit=committed.append,
            ),
            owner=OWNER,
        )
    assert repository.versions("strokes") == [] and committed == []
    assert not (tmp_path / "models" / "strokes").exists()  # not even an empty model directory


def test_past_the_commit_point_a_failed_default_write_still_publishes_and_says_so(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = ModelRepository(tmp_path / "models")

    def disk_full(name: str, version: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(repository, "set_default", disk_full)
    committed: list[int] = []
    hooks = TrainingHooks(on_commit=committed.append)
    published = run_training(TINY, data, "strokes", repository, hooks, owner=OWNER)
    assert published.version == 1 and committed == [1]
    assert published.default_error is not None and "DEFAULT" in published.default_error
    assert repository.versions("strokes") == [1]
    assert repository.manifest("strokes", 1).files  # whole, with its hashes
    assert repository.last_issued("strokes") == 1
    assert leftovers(tmp_path / "models") == ["strokes"]


def test_a_default_write_that_fails_leaves_no_temp_file(tmp_path: Path) -> None:
    repository = ModelRepository(tmp_path / "models")
    (tmp_path / "models" / "m" / "1").mkdir(parents=True)
    (tmp_path / "models" / "m" / "1" / "manifest.json").write_text("{}")
    blocker = tmp_path / "models" / "m" / "DEFAULT"
    blocker.mkdir()
    (blocker / "in-the-way").write_text("x")  # os.replace onto a non-empty directory fails
    with pytest.raises(OSError):
        repository.set_default("m", 1)
    assert sorted(p.name for p in (tmp_path / "models" / "m").iterdir()) == ["1", "DEFAULT"]


def test_the_sweep_removes_what_dead_jobs_left_and_keeps_what_live_ones_use(
    tmp_path: Path,
) -> None:
    root = tmp_path / "models"
    repository = ModelRepository(root)
    dead = repository.staging_dir("a", owner="f" * 32)
    alive = repository.staging_dir("b", owner=OWNER)
    (root / "b" / "1").mkdir()
    fresh_cli = repository.staging_dir("b")  # ownerless (vae train): kept until a day old
    stale_temp = root / "b" / ".DEFAULT.abc123"
    stale_temp.write_text("")
    old = time.time() - 3600
    os.utime(stale_temp, (old, old))
    removed = repository.sweep(lambda owner: owner == OWNER)
    assert not dead.exists() and not (root / "a").exists()
    assert alive.exists() and fresh_cli.exists() and (root / "b" / "1").exists()
    assert not stale_temp.exists()
    assert len(removed) == 3  # the dead staging, its empty model directory, the temp file
