"""Server processes for the bench: start in their own process group, wait until ready, account
their CPU time, stop them (the whole group: Triton and LitServe start children of their own)."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def vae_command(*args: str) -> list[str]:
    """`vae <args>` run by the interpreter the bench itself runs under (whatever virtualenv that
    is), as `python -m app.cli`: started in a checkout, it serves that checkout's code."""
    return [sys.executable, "-m", "app.cli", *args]


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def status_mib(pid: int, field: str) -> float | None:
    """A memory field of /proc/<pid>/status (VmRSS, VmHWM, ...) in MiB; None when it has none."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return None


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of a GET; status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, urllib.error.URLError):
        return 0, b""


def http_post_json(url: str, body: str, timeout: float = 30.0) -> tuple[int, bytes]:
    """(status, body) of a JSON POST."""
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class ServerProcess:
    """One server under test, its output in a log file, stopped by process group."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], cwd: Path, log: Path
    ) -> None:
        self.name = name
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **env},
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_ready(self, url: str, timeout: float = 180.0) -> None:
        """Polls `url` until it answers 200; raises with the log's tail if the server dies or
        takes longer than `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.process.returncode}):\n{self.tail()}"
                )
            status, _ = http_get(url, timeout=2.0)
            if status == 200:
                return
            time.sleep(0.5)
        raise TimeoutError(f"{self.name} not ready after {timeout:.0f} s:\n{self.tail()}")

    def tail(self, lines: int = 30) -> str:
        """The last lines of the server's output."""
        self._log_file.flush()
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def tree(self) -> dict[int, _Proc]:
        """The server and every live process it started, also those in sessions of their own
        (BentoML's workers): its process group plus its descendants."""
        table = _process_table()
        root = self.process.pid
        members = {pid for pid, proc in table.items() if proc.pgrp == root}
        members.add(root)
        grew = True
        while grew:
            found = {pid for pid, proc in table.items() if proc.ppid in members} - members
            members |= found
            grew = bool(found)
        return {pid: table[pid] for pid in members if pid in table}

    def prioritize(self, nice: int) -> None:
        """Sets the scheduling priority of the server's whole tree, and of the autogroups (one a
        session) its processes are in: with autogroup scheduling, a process's own nice value only
        counts against processes of its session, while sessions share the CPU equally."""
        if not nice:
            return
        for pid in self.tree():
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, pid, nice)
                Path(f"/proc/{pid}/autogroup").write_text(str(nice))

    def cpu_seconds(self) -> float:
        """User + system CPU time of the live processes in the server's tree."""
        return sum(proc.cpu for proc in self.tree().values())

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM to the group, SIGKILL after `grace` seconds, then to whatever of the tree
        is left."""
        tree = self.tree()
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=grace)
            except ProcessLookupError:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # children that outlived the leader
        now = _process_table()
        for pid, proc in tree.items():  # the same process (same start time), never a reused pid
            if pid in now and now[pid].started == proc.started:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        self._log_file.close()


@dataclass(frozen=True)
class _Proc:
    ppid: int
    pgrp: int
    cpu: float  # user + system seconds
    started: int  # clock ticks after boot: tells a process from a later one with its pid


def prioritize_self(nice: int) -> None:
    """Nice value for this process (its children inherit it) and its session's autogroup. The
    autogroup is the calling shell's session too, so its nice value is put back when the bench
    exits: left at -10, it starved everything started later from that shell against processes
    in sessions of their own (a later test run's RQ workers trained 50 times slower)."""
    if not nice:
        return
    os.setpriority(os.PRIO_PROCESS, 0, nice)
    autogroup = Path("/proc/self/autogroup")
    with contextlib.suppress(OSError, ValueError):
        before = int(autogroup.read_text().split("nice")[1])  # "/autogroup-85 nice 0"
        autogroup.write_text(str(nice))
        atexit.register(_restore_autogroup, before)


def _restore_autogroup(nice: int) -> None:
    with contextlib.suppress(OSError):
        Path("/proc/self/autogroup").write_text(str(nice))


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores; idle, I/O wait and
    time stolen by the hypervisor excluded)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


def _process_table() -> dict[int, _Proc]:
    """Every process on the machine, from /proc/<pid>/stat."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after "pid (comm)": [0] state [1] ppid [2] pgrp ... [11] utime [12] stime [19] starttime
        cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        table[int(entry.name)] = _Proc(int(fields[1]), int(fields[2]), cpu, int(fields[19]))
    return table
