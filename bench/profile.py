"""Where a server's time goes under load: py-spy samples it while wrk drives it.

    .venv/bin/python -m bench.profile --system service --model mnist --clients 64

Writes the collapsed stacks (flamegraph input) and a summary to bench/results/profile-<time>/ and
prints the functions with the most samples, self and inclusive. py-spy is installed into
bench/.venvs/tools on first use.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench import machine
from bench.loadgen import run_wrk, write_bodies
from bench.models import conv_model, shipped_model
from bench.peers.install import PeerEnv, ensure_peer, peer_envs
from bench.run import RESULTS, WORK
from bench.systems import PEERS, Knobs, Service, System

TOOLS = PeerEnv("tools", ("py-spy",), "os")


def _frame(frame: str) -> str:
    """'func (path/to/module.py:123)' -> 'func (module.py)'."""
    name, _, where = frame.partition(" (")
    return f"{name} ({Path(where.split(':')[0]).name})" if where else name


def _table(title: str, counts: Counter[str], total: int, top: int) -> list[str]:
    lines = ["", f"{title}:"]
    lines += [f"  {100 * n / total:5.1f}%  {name}" for name, n in counts.most_common(top)]
    return lines


def summarize(collapsed: Path, top: int = 25) -> str:
    """Self and inclusive sample shares per function, from py-spy's raw (collapsed) output;
    with thread frames (py-spy --threads), per thread and for the busiest thread alone."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    stacks: list[tuple[list[str], int]] = []
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        frames = [_frame(f) for f in stack.split(";")]
        count = int(count_text)
        stacks.append((frames, count))
        thread = next((f for f in frames[:3] if f.startswith("thread ")), None)
        if thread:
            threads[thread] += count
    total = sum(count for _, count in stacks)
    if not total:
        return "no samples"
    busiest = threads.most_common(1)[0][0] if threads else None
    main_own: Counter[str] = Counter()
    main_inclusive: Counter[str] = Counter()
    for frames, count in stacks:
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
        if busiest and busiest in frames:
            main_own[frames[-1]] += count
            for name in set(frames):
                main_inclusive[name] += count
    lines = [f"{total} samples"]
    if threads:
        lines += _table("samples by thread", threads, total, 8)
        main_total = threads[busiest]
        lines += _table(f"self, {busiest} only", main_own, main_total, top)
        lines += _table(f"inclusive, {busiest} only", main_inclusive, main_total, top)
    lines += _table("self", own, total, top)
    lines += _table("inclusive", inclusive, total, top)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Starts one system, loads it with wrk, records it with py-spy, prints the summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--system", default="service", help="service, service-nobatch or a peer")
    parser.add_argument("--model", default="mnist", choices=["mnist", "conv"])
    parser.add_argument("--route", default="decode", choices=["decode", "sample"])
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--native", action="store_true", help="include C frames (slower)")
    args = parser.parse_args(argv)
    knobs = Knobs(threads=machine.cores(), max_batch_size=64, max_delay_ms=2.0, sample_n=8)
    model = shipped_model(WORK) if args.model == "mnist" else conv_model(WORK)
    system: System
    if args.system in PEERS:
        venv = ensure_peer(peer_envs()[args.system], WORK / "logs" / f"install-{args.system}.log")
        system = PEERS[args.system](knobs, WORK, venv)
    else:
        system = Service(knobs, WORK, batching=args.system == "service")
    py_spy = ensure_peer(TOOLS, WORK / "logs" / "install-tools.log") / "py-spy"
    out = RESULTS / f"profile-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    out.mkdir(parents=True, exist_ok=True)
    system.start(model)
    try:
        target = system.target(args.route, model)
        if target is None:
            parser.error(f"{args.system} has no /{args.route}")
        bodies = write_bodies(out / "bodies.txt", target.bodies)
        run_wrk(target.url, bodies, args.clients, 2)  # warm
        result: dict[str, object] = {}
        load = threading.Thread(
            target=lambda: result.update(
                load=run_wrk(target.url, bodies, args.clients, args.seconds + 2)
            )
        )
        load.start()
        assert system.server is not None
        collapsed = out / "stacks.txt"
        command = [
            str(py_spy), "record", "--pid", str(system.server.process.pid), "--subprocesses",
            "--duration", str(args.seconds), "--rate", "200", "--format", "raw",
            "--output", str(collapsed), "--nonblocking", "--threads",
        ]  # fmt: skip
        if args.native:
            command.append("--native")
        subprocess.run(command, check=True, capture_output=True)
        load.join()
    finally:
        system.stop()
    summary = summarize(collapsed)
    (out / "summary.txt").write_text(f"{result.get('load')}\n\n{summary}\n")
    print(result.get("load"))
    print(summary)
    print(f"\nstacks: {collapsed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
