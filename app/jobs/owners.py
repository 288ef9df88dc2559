"""The process that runs a job, named so that another process can tell at once whether it still
runs: its host, its pid and the pid's start time (a pid reused by a later process is not taken
for the one that died). An RQ work-horse records its mark in the job's transaction hash when the
task starts, before it can leave anything behind; a worker starting on the same host sweeps the
staging of a job whose process is gone without waiting for its heartbeat to go stale.

Torch-free. The start time is read from /proc (Linux); elsewhere only the pid is compared.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

_HOST, _PID, _STARTED = "owner_host", "owner_pid", "owner_started"


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rpartition(")")[2].split()


def _start_time(pid: int) -> str:
    """The pid's start time in clock ticks since boot ("" where /proc cannot say)."""
    fields = _stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else ""


@dataclass(frozen=True)
class ProcessMark:
    """A process, named across pid reuse: host, pid and start time."""

    host: str
    pid: int
    started: str

    @classmethod
    def current(cls) -> ProcessMark:
        """This process's mark."""
        pid = os.getpid()
        return cls(socket.gethostname(), pid, _start_time(pid))

    def fields(self) -> dict[str, str]:
        """The mark as hash fields."""
        return {_HOST: self.host, _PID: str(self.pid), _STARTED: self.started}

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> ProcessMark | None:
        """The mark in `fields` (a transaction hash read as text), or None when it has none."""
        try:
            return cls(fields[_HOST], int(fields[_PID]), fields.get(_STARTED, ""))
        except (KeyError, ValueError):
            return None

    def on_this_host(self) -> bool:
        """True when the process ran on this host (only then can its liveness be seen)."""
        return self.host == socket.gethostname()

    def running(self) -> bool:
        """True while the process runs (on this host): the pid exists, is not a zombie, and
        started when the mark says."""
        fields = _stat(self.pid)
        if fields is None:
            return _pid_exists(self.pid) if self.started == "" else False
        if fields[0] in {"Z", "X"}:  # dead, not yet reaped
            return False
        return self.started == "" or _start_time(self.pid) == self.started


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
