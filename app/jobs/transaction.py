"""A training job as a transaction: one gate decides, once, whether the job is cancelled or
commits (publishes), so a cancel and a publish can never both happen.

The gate starts open. A cancel claims it for `cancel` (then the job never publishes: it stops at
its next check, or is killed, and leaves nothing); the task claims it for `commit` just before it
renames its staging directory into place (then the cancel is too late: the version is published
and the job succeeds whatever follows). The commit claim names the version about to be committed,
so a backend judging a job whose process died past its claim asks the repository whether that
version exists before it says anything: a process may die in the instant after the rename, before
it reports the version. The local backend's gate is a shared integer under a process lock; the RQ
backend's a field of a Redis hash set with HSETNX. Torch-free.
"""

from __future__ import annotations

import contextlib
import logging
import time
from types import SimpleNamespace
from typing import Any, Final, Literal, Protocol

from pydantic import BaseModel

from app.repository.protocol import Repository

logger = logging.getLogger(__name__)

Gate = Literal["open", "cancel", "commit"]
OPEN: Final = "open"
CANCEL: Final = "cancel"
COMMIT: Final = "commit"
_LOCAL_CANCEL: Final = 1
_LOCAL_COMMIT: Final = 2  # a LocalGate's value past this is 2 + the version being committed
CANCEL_GRACE_SECONDS = 5.0
"""A cancelled job that has not stopped by itself after this is killed (safe: it cannot commit)."""


class CancelOutcome(BaseModel):
    """What a cancel did: `cancelled` (nothing is or will be published), `too_late` (the job had
    passed its commit point: published, or publishing, as `version`), or `ended` (the job had
    already failed or been cancelled)."""

    outcome: Literal["cancelled", "too_late", "ended"]
    message: str
    version: int | None = None


def cancel_outcome(status: str, gate: Gate, version: int | None) -> CancelOutcome:
    """The answer to a cancel of a job in `status` whose gate is `gate`."""
    if gate == COMMIT or status == "succeeded":
        where = f"published as version {version}" if version else "the job is publishing"
        return CancelOutcome(outcome="too_late", message=f"too late: {where}", version=version)
    if gate == CANCEL or status in {"queued", "running", "cancelled"}:
        stopping = " (the job is stopping)" if status == "running" else ""
        return CancelOutcome(
            outcome="cancelled", message=f"cancelled: nothing is published{stopping}"
        )
    return CancelOutcome(outcome="ended", message=f"the job had already {status}")


class CommitGate(Protocol):
    """The task's side of the gate."""

    def cancelled(self) -> bool:
        """True once a cancel has claimed the gate."""
        ...

    def claim_commit(self, version: int) -> bool:
        """Claims the gate for publishing `version` (recorded with the claim; a later claim, for
        the next number when another publisher took this one, records that); False when a
        cancel has claimed it first."""
        ...


class LocalGate:
    """The gate of a local job: a `multiprocessing.Value` (a 64-bit integer: 0 open, 1 cancel,
    2 + N commit of version N) shared with its child process."""

    def __init__(self, value: Any) -> None:
        self.value = value

    @property
    def state(self) -> Gate:
        """open, cancel or commit."""
        code = int(self.value.value)
        return OPEN if code == 0 else CANCEL if code == _LOCAL_CANCEL else COMMIT

    @property
    def committing_version(self) -> int | None:
        """The version the commit claim named (None before a commit claim)."""
        code = int(self.value.value)
        return code - _LOCAL_COMMIT if code > _LOCAL_COMMIT else None

    def claim_cancel(self) -> bool:
        """Claims the gate for a cancel; False when the job has passed its commit point."""
        with self.value.get_lock():
            if self.value.value == 0:
                self.value.value = _LOCAL_CANCEL
            return bool(self.value.value == _LOCAL_CANCEL)

    def claim_commit(self, version: int) -> bool:
        """Claims the gate for publishing `version`; False when a cancel came first."""
        with self.value.get_lock():
            if self.value.value == _LOCAL_CANCEL:
                return False
            self.value.value = _LOCAL_COMMIT + version
            return True

    def cancelled(self) -> bool:
        """True once a cancel has claimed the gate."""
        return self.state == CANCEL

    def release(self) -> None:
        """Keeps the gate's last state but lets go of the shared value (and its semaphore), for
        a backend that closes: no child will claim it any more."""
        self.value = SimpleNamespace(value=self.value.value, get_lock=contextlib.nullcontext)


def txn_key(job_id: str) -> str:
    """The Redis hash of an RQ job's transaction: gate, committing_version (named by the commit
    claim), committed_version (reported after the commit), cancel_requested_at, the owner
    process's mark (app/jobs/owners)."""
    return f"vae:job:{job_id}:txn"


class RedisGate:
    """The gate of an RQ job: field `gate` of its transaction hash, claimed with HSETNX.
    `cancelled()` is polled every training step, so it asks Redis at most every `poll_s`."""

    def __init__(self, redis: Any, job_id: str, ttl_s: int, poll_s: float = 0.5) -> None:
        self.redis = redis
        self.key = txn_key(job_id)
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self._checked = 0.0
        self._cancelled = False

    def _claim(self, gate: Gate) -> bool:
        pipe = self.redis.pipeline()
        pipe.hsetnx(self.key, "gate", gate)
        pipe.expire(self.key, self.ttl_s)
        pipe.hget(self.key, "gate")
        _, _, value = pipe.execute()
        return bool(_text(value) == gate)

    def claim_cancel(self) -> bool:
        """Claims the gate for a cancel (and records when); False past the commit point."""
        self.redis.hsetnx(self.key, "cancel_requested_at", time.time())
        return self._claim(CANCEL)

    def claim_commit(self, version: int) -> bool:
        """Claims the gate for publishing `version`, recorded as `committing_version` before
        this returns (so before the commit); False when a cancel came first."""
        if not self._claim(COMMIT):
            return False
        self.redis.hset(self.key, "committing_version", version)
        return True

    def cancelled(self) -> bool:
        """True once a cancel has claimed the gate (cached for `poll_s`)."""
        now = time.monotonic()
        if not self._cancelled and now - self._checked >= self.poll_s:
            self._checked = now
            self._cancelled = _text(self.redis.hget(self.key, "gate")) == CANCEL
        return self._cancelled

    def record_owner(self, fields: dict[str, str]) -> None:
        """When the task starts: the process running it (app/jobs/owners.ProcessMark)."""
        pipe = self.redis.pipeline()
        pipe.hset(self.key, mapping=fields)
        pipe.expire(self.key, self.ttl_s)
        pipe.execute()

    def record_version(self, version: int) -> None:
        """Right after the commit: the version this job published."""
        self.redis.hset(self.key, "committed_version", version)

    def read(self) -> dict[str, str]:
        """The whole transaction hash, as text."""
        raw = self.redis.hgetall(self.key)
        return {_text(k): _text(v) for k, v in raw.items()}


def published_as(repository: Repository, name: str, version: int | None) -> int | None:
    """`version` when `repository` holds it: the commit a job claimed for it went through even
    if its process died before saying so. None when there is no such claim, the version is
    absent (the process died before the commit), or the repository cannot be read (logged)."""
    if version is None:
        return None
    try:
        return version if version in repository.versions(name) else None
    except OSError as error:  # ObjectStoreUnavailable too
        logger.warning(
            "could not tell whether %s version %d was published: %s", name, version, error
        )
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
