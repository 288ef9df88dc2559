"""One command for the whole benchmark (GitHub issue 3):

    .venv/bin/python -m bench.run            # every system, model, route and concurrency
    .venv/bin/python -m bench.run --quick    # 1 and 64 clients, short windows: a smoke run

Routes: `decode` (each system's own decode route), `sample`, and `oip`: the Open Inference
Protocol's /infer of a decoder (ours `/v2/models/<model>.decoder/infer`, Triton's
`/v2/models/decoder/infer`), every system sent the very same body (one latent, binary tensors in
and base64 PNGs out as binary, post_raw.lua).

For each model it measures the raw engine (ONNX Runtime in-process, best batch size), starts every
system, and drives each in turn with wrk (closed loop, fixed time) at each concurrency, in
interleaved rounds; each point keeps the round that other processes on the machine disturbed least.
Results go to the terminal and to bench/results/<time>/ (results.json, results.md, every-round.json).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import signal
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image

from bench import engine, machine
from bench.loadgen import ensure_wrk, run_wrk, write_bodies
from bench.models import ROOT, BenchModel, conv_model, shipped_model
from bench.peers.install import PeerUnavailable, ensure_peer, peer_envs
from bench.procs import http_post_json, machine_busy_seconds, prioritize_self
from bench.report import RAW, Cell, markdown_table, targets, targets_text, text_table
from bench.systems import (
    OIP_HEADER_LENGTH,
    PEERS,
    SYSTEM_NAMES,
    Knobs,
    Service,
    System,
    Target,
    oip_images,
)

WORK = ROOT / "bench" / "work"
RESULTS = ROOT / "bench" / "results"
RAW_LUA = Path(__file__).with_name("post_raw.lua")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="clients 1,64; 3 s windows, 1 round")
    parser.add_argument("--clients", default=None, help="comma list (default 1,8,64,256)")
    parser.add_argument("--duration", type=float, default=None, help="seconds a window (6)")
    parser.add_argument("--warmup", type=float, default=None, help="seconds before each (2)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds (2)")
    parser.add_argument("--systems", default=",".join(SYSTEM_NAMES), help="comma list")
    parser.add_argument("--models", default="mnist,conv", help="comma list of mnist, conv")
    parser.add_argument(
        "--routes", default="decode,sample,oip", help="comma list of decode, sample, oip"
    )
    parser.add_argument("--threads", type=int, default=None, help="ORT threads (all cores)")
    parser.add_argument("--max-batch-size", type=int, default=64)
    parser.add_argument("--max-delay-ms", type=float, default=2.0)
    parser.add_argument("--sample-n", type=int, default=8, help="images per /sample request")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="scheduling priority (process and session autogroup) of the bench and everything "
        "it starts, e.g. -10 as root, so that other sessions' jobs on a shared machine disturb "
        "the measurements less",
    )
    parser.add_argument(
        "--service-root",
        type=Path,
        default=ROOT,
        help="run the service from this checkout (e.g. a worktree with a candidate change)",
    )
    args = parser.parse_args(argv)
    args.clients = [
        int(c) for c in (args.clients or ("1,64" if args.quick else "1,8,64,256")).split(",")
    ]
    args.duration = args.duration or (3.0 if args.quick else 6.0)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 2.0)
    args.systems = [s for s in args.systems.split(",") if s]
    args.models = [m for m in args.models.split(",") if m]
    args.routes = [r for r in args.routes.split(",") if r]
    unknown = set(args.systems) - set(SYSTEM_NAMES)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; known: {', '.join(SYSTEM_NAMES)}")
    return args


def _say(text: str) -> None:
    print(text, flush=True)


def _post_raw(target: Target) -> tuple[int, bytes, str | None]:
    """(status, body, Inference-Header-Content-Length) of the target's binary POST."""
    assert target.raw is not None
    headers = {
        "Content-Type": target.content_type,
        **dict([target.header] if target.header else []),
    }
    request = urllib.request.Request(target.url, data=target.raw, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers.get(OIP_HEADER_LENGTH)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), None


def _answer_images(system: System, target: Target) -> list[str]:
    """The base64 PNGs of one request's answer; RuntimeError unless it is a 200."""
    if target.raw is None:
        status, answer = http_post_json(target.url, target.bodies[0])
        length = None
    else:
        status, answer, length = _post_raw(target)
    if status != 200:
        raise RuntimeError(f"{system.name} answered {status}: {answer[:300]!r}")
    if target.raw is None:
        return system.images(answer)
    if length is None:
        raise RuntimeError(f"{system.name} answered without {OIP_HEADER_LENGTH}: {answer[:300]!r}")
    return oip_images(answer, int(length))


def _check_answer(system: System, target: Target, model: BenchModel) -> None:
    """One request, answered with PNGs of the model's size, before any load."""
    images = _answer_images(system, target)
    _, height, width = model.image_shape
    with Image.open(io.BytesIO(base64.b64decode(images[0]))) as image:
        if image.format != "PNG" or image.size != (width, height):
            raise RuntimeError(f"{system.name} answered a {image.format} of {image.size}")
    if len(images) != target.rows_per_request:
        raise RuntimeError(f"{system.name} answered {len(images)} images")


def _measure(
    system: System,
    target: Target,
    model: BenchModel,
    route: str,
    clients: int,
    args: argparse.Namespace,
    bodies: Path,
) -> Cell:
    assert system.server is not None
    _drain(system)
    script: dict[str, Any] = {}
    if target.raw is not None:
        extra = target.header or ()
        script = {"script": RAW_LUA, "script_args": (target.content_type, *extra)}
    if args.warmup > 0:
        run_wrk(target.url, bodies, clients, args.warmup, **script)
    calls0, rows0 = system.batch_counters()
    cpu0, busy0 = system.server.cpu_seconds(), machine_busy_seconds()
    load = run_wrk(target.url, bodies, clients, args.duration, **script)
    cpu1, busy1 = system.server.cpu_seconds(), machine_busy_seconds()
    calls1, rows1 = system.batch_counters()
    calls = calls1 - calls0
    other = (busy1 - busy0) - (cpu1 - cpu0) - load.client_cpu_seconds
    return Cell(
        system=system.name,
        label=system.label,
        model=model.key,
        route=route,
        clients=clients,
        rps=load.rps,
        sps=load.rps * target.rows_per_request,
        p50_ms=load.p50_ms,
        p99_ms=load.p99_ms,
        mean_batch=(rows1 - rows0) / calls if calls else None,
        errors=load.errors,
        is_peer=system.is_peer,
        server_cpu_pct=100.0 * (cpu1 - cpu0) / load.seconds,
        client_cpu_pct=100.0 * load.client_cpu_seconds / load.seconds,
        other_cpu_pct=max(0.0, 100.0 * other / load.seconds),
    )


def _drain(system: System, limit: float = 30.0) -> None:
    """Waits until the server is idle (under 25% of a core for half a second): a server may still
    be computing answers for clients of the last window that have gone, and that work must not
    count against the next window."""
    assert system.server is not None
    deadline = time.monotonic() + limit
    before = system.server.cpu_seconds()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = system.server.cpu_seconds()
        if now - before < 0.125:
            return
        before = now


@dataclass
class _Live:
    """A started system with its routes' requests written out."""

    system: System
    targets: dict[str, tuple[Target, Path]]


def _start_all(
    systems: list[System], model: BenchModel, args: argparse.Namespace, out: Path, notes: list[str]
) -> list[_Live]:
    live = []
    for system in systems:
        _say(f"  {system.label}: starting")
        try:
            system.start(model)
            targets = {}
            for route in args.routes:
                target = system.target(route, model)
                if target is None:
                    continue
                _check_answer(system, target, model)
                name = f"bodies-{system.name}-{model.key}-{route}"
                if target.raw is not None:
                    (out / f"{name}.bin").write_bytes(target.raw)
                    targets[route] = (target, out / f"{name}.bin")
                else:
                    targets[route] = (target, write_bodies(out / f"{name}.txt", target.bodies))
            live.append(_Live(system, targets))
        except Exception as error:  # one system failing must not end the run
            notes.append(f"{system.label} on {model.key}: {error}")
            _say(f"  {system.label}: FAILED: {str(error)[:2000]}")
            system.stop()
    return live


def _run_model(
    systems: list[System],
    model: BenchModel,
    args: argparse.Namespace,
    out: Path,
    notes: list[str],
) -> tuple[list[Cell], list[Cell]]:
    """Every started system, route and concurrency, in `args.rounds` interleaved rounds; per
    point the round that other processes disturbed least (this machine is shared).
    Returns (the chosen points, every point measured)."""
    tried: dict[tuple[str, str, int], list[Cell]] = {}
    try:
        live = _start_all(systems, model, args, out, notes)
        for round_ in range(args.rounds):
            for route in args.routes:
                for clients in args.clients:
                    for entry in live:
                        if route not in entry.targets:
                            continue
                        target, bodies = entry.targets[route]
                        try:
                            cell = _measure(
                                entry.system, target, model, route, clients, args, bodies
                            )
                        except Exception as error:  # noted; the other points go on
                            notes.append(f"{entry.system.label} /{route} c={clients}: {error}")
                            continue
                        cell.round = round_
                        tried.setdefault((entry.system.name, route, clients), []).append(cell)
                        _say(_line(cell))
    finally:
        for system in systems:
            system.stop()
    chosen = [min(c, key=lambda c: (c.other_cpu_pct or 0.0, -c.rps)) for c in tried.values()]
    return chosen, [cell for cells in tried.values() for cell in cells]


def _line(cell: Cell) -> str:
    batch = f"{cell.mean_batch:.1f}" if cell.mean_batch else "-"
    return (
        f"    r{cell.round} {cell.system:<15} /{cell.route} c={cell.clients:<3} "
        f"{cell.rps:7,.0f} req/s {cell.sps:7,.0f} samples/s p50 {cell.p50_ms:7.1f} ms "
        f"p99 {cell.p99_ms:7.1f} ms batch {batch:>5} errors {cell.errors} "
        f"CPU server {cell.server_cpu_pct:.0f}% other {cell.other_cpu_pct:.0f}%"
    )


def _systems(args: argparse.Namespace, knobs: Knobs, notes: list[str]) -> list[System]:
    systems: list[System] = []
    envs = peer_envs()
    for name in args.systems:
        if name in ("service", "service-nobatch"):
            root = args.service_root.resolve()
            systems.append(Service(knobs, WORK, batching=name == "service", root=root))
            continue
        _say(f"peer {name}: checking its virtualenv (installs on first use)")
        try:
            venv_bin = ensure_peer(envs[name], WORK / "logs" / f"install-{name}.log")
        except PeerUnavailable as error:
            notes.append(f"{name} not measured: {error}")
            _say(f"  {error}")
            continue
        systems.append(PEERS[name](knobs, WORK, venv_bin))
    return systems


def _engine_cell(
    model: BenchModel, knobs: Knobs, seconds: float
) -> tuple[Cell, list[dict[str, float]]]:
    points = engine.sweep(model.decoder, model.latent_dim, knobs.threads, seconds)
    top = engine.best(points)
    cell = Cell(
        system=RAW,
        label=f"raw engine (ORT, batch {top.batch})",
        model=model.key,
        route="*",
        clients=0,
        rps=top.calls_per_second,
        sps=top.samples_per_second,
        p50_ms=top.p50_ms,
        p99_ms=top.p99_ms,
        mean_batch=float(top.batch),
    )
    sweep = [
        {
            "batch": p.batch,
            "samples_per_s": p.samples_per_second,
            "p50_ms": p.p50_ms,
            "p99_ms": p.p99_ms,
        }
        for p in points
    ]
    return cell, sweep


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; returns the exit code."""
    args = _parse(argv)
    # SIGTERM ends the run like Ctrl-C: the finally blocks stop every server started so far.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    prioritize_self(args.nice)  # wrk and the raw engine run in this session
    ensure_wrk()
    WORK.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / stamp
    out.mkdir(parents=True, exist_ok=True)
    knobs = Knobs(
        threads=args.threads or machine.cores(),
        max_batch_size=args.max_batch_size,
        max_delay_ms=args.max_delay_ms,
        sample_n=args.sample_n,
        nice=args.nice,
    )
    about = machine.describe()
    _say("machine: " + "; ".join(f"{k} {v}" for k, v in about.items()))
    started = time.monotonic()
    notes: list[str] = []
    systems = _systems(args, knobs, notes)
    makers = {"mnist": shipped_model, "conv": conv_model}
    cells: list[Cell] = []
    every: list[Cell] = []
    points = len(args.clients) * args.rounds * (args.duration + args.warmup)
    per_model = sum(
        points
        * (
            len([s for s in args.systems if not s.startswith("service")]) * (r in ("decode", "oip"))
            + len([s for s in args.systems if s.startswith("service")])
        )
        for r in args.routes
    )
    _say(f"about {len(args.models) * per_model / 60:.0f} min of load, plus start-ups")
    sweeps: dict[str, list[dict[str, float]]] = {}
    models: list[BenchModel] = []
    for key in args.models:
        _say(f"model {key}: preparing")
        model = makers[key](WORK)
        models.append(model)
        _say(f"model {key}: {model.note} ({model.decoder})")
        cell, sweeps[key] = _engine_cell(model, knobs, 0.5 if args.quick else 1.5)
        cells.append(cell)
        _say(f"  {cell.label}: {cell.sps:,.0f} samples/s, p50 {cell.p50_ms:.2f} ms a batch")
        chosen, measured = _run_model(systems, model, args, out, notes)
        cells.extend(chosen)
        every.extend(measured)
    elapsed = time.monotonic() - started
    checks = targets(cells)
    text = []
    for model in models:
        for route in args.routes:
            text.append(f"\n== {model.key} /{route}: {model.note}")
            text.append(text_table(cells, model.key, route))
    text.append("\ntargets at 64 clients on /decode and /oip:")
    text.append(targets_text(checks))
    text.extend(f"note: {n}" for n in notes)
    text.append(f"\nwall time {elapsed / 60:.1f} min; results in {out}")
    _say("\n".join(text))
    _write(out, args, knobs, about, models, cells, sweeps, checks, notes, elapsed)
    (out / "every-round.json").write_text(json.dumps([c.to_dict() for c in every], indent=1))
    return 0


def _write(
    out: Path,
    args: argparse.Namespace,
    knobs: Knobs,
    about: dict[str, str],
    models: list[BenchModel],
    cells: list[Cell],
    sweeps: dict[str, list[dict[str, float]]],
    checks: list[tuple[str, bool | None, str]],
    notes: list[str],
    elapsed: float,
) -> None:
    settings = {
        "clients": args.clients,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "nice": args.nice,
        "knobs": knobs.__dict__,
        "argv": sys.argv[1:],
    }
    data = {
        "machine": about,
        "settings": settings,
        "wall_seconds": elapsed,
        "models": {
            m.key: {
                "note": m.note,
                "decoder": str(m.decoder),
                "latent_dim": m.latent_dim,
                "image": m.image_shape,
            }
            for m in models
        },
        "engine_sweeps": sweeps,
        "cells": [c.to_dict() for c in cells],
        "targets": [{"what": w, "held": h, "detail": d} for w, h, d in checks],
        "notes": notes,
    }
    (out / "results.json").write_text(json.dumps(data, indent=2))
    md = [
        "## Machine",
        "",
        *(f"- {k}: {v}" for k, v in about.items()),
        "",
        f"Settings: {json.dumps(settings)}",
        "",
    ]
    for model in models:
        for route in args.routes:
            md += [
                f"### {model.key} /{route}",
                "",
                f"{model.note}",
                "",
                markdown_table(cells, model.key, route),
                "",
            ]
    md += ["### Targets at 64 clients on /decode and /oip", "", "```", targets_text(checks), "```"]
    md += [f"- {n}" for n in notes]
    (out / "results.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    sys.exit(main())
