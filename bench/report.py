"""Tables of the bench's results (figures with their ratios to the raw engine and the best peer)
and the issue's targets at 64 clients, as plain text and as Markdown."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

RAW = "raw-engine"


@dataclass
class Cell:
    """One measured point: a system on a model's route at a number of clients."""

    system: str
    label: str
    model: str
    route: str
    clients: int  # 0 for the raw engine
    rps: float
    sps: float
    p50_ms: float
    p99_ms: float
    mean_batch: float | None
    errors: int = 0
    server_cpu_pct: float | None = None
    client_cpu_pct: float | None = None
    other_cpu_pct: float | None = None  # everything else on the machine during the window
    round: int = 0
    is_peer: bool = False
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


FIGURES = (("rps", "req/s"), ("sps", "samples/s"), ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms"))


def raw_cell(cells: list[Cell], model: str) -> Cell | None:
    """The raw engine's best point for `model`."""
    return next((c for c in cells if c.system == RAW and c.model == model), None)


def best_peer(cells: list[Cell], model: str, route: str, clients: int) -> Cell | None:
    """The peer with the most requests a second on the same model, route and clients."""
    peers = [
        c
        for c in cells
        if c.is_peer and c.model == model and c.route == route and c.clients == clients
    ]
    return max(peers, key=lambda c: c.rps, default=None)


def _fmt(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}" if base else "-"


def rows(cells: list[Cell], model: str, route: str) -> list[list[str]]:
    """Table rows for one model and route: each figure as `value (x raw, x best peer)`."""
    raw = raw_cell(cells, model)
    out: list[list[str]] = []
    ordered = ([raw] if raw else []) + sorted(
        (c for c in cells if c.model == model and c.route == route and c.system != RAW),
        key=lambda c: (c.clients, c.is_peer, c.system),
    )
    for cell in ordered:
        peer = None if cell.system == RAW else best_peer(cells, model, route, cell.clients)
        row = [cell.label, str(cell.clients) if cell.clients else "-"]
        for attr, _ in FIGURES:
            value = float(getattr(cell, attr))
            base_raw = float(getattr(raw, attr)) if raw else None
            base_peer = float(getattr(peer, attr)) if peer else None
            row.append(f"{_fmt(value)} ({_ratio(value, base_raw)}, {_ratio(value, base_peer)})")
        row.append(_fmt(cell.mean_batch) if cell.mean_batch else "-")
        row.append(str(cell.errors))
        row.append(f"{cell.server_cpu_pct:.0f}%" if cell.server_cpu_pct is not None else "-")
        row.append(f"{cell.other_cpu_pct:.0f}%" if cell.other_cpu_pct is not None else "-")
        out.append(row)
    return out


HEADER = [
    "system",
    "clients",
    *(f"{name} (xraw, xpeer)" for _, name in FIGURES),
    "mean batch",
    "errors",
    "server CPU",
    "other CPU",
]


def text_table(cells: list[Cell], model: str, route: str) -> str:
    """A fixed-width table for the terminal."""
    table = [HEADER, *rows(cells, model, route)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(cells: list[Cell], model: str, route: str) -> str:
    """The same table in Markdown."""
    table = [HEADER, *rows(cells, model, route)]
    lines = ["| " + " | ".join(r) + " |" for r in table]
    lines.insert(1, "|" + "|".join(" --- " for _ in HEADER) + "|")
    return "\n".join(lines)


def _find(cells: list[Cell], system: str, model: str, route: str, clients: int) -> Cell | None:
    return next(
        (
            c
            for c in cells
            if c.system == system and c.model == model and c.route == route and c.clients == clients
        ),
        None,
    )


def targets(cells: list[Cell], clients: int = 64) -> list[tuple[str, bool | None, str]]:
    """The issues' done-when checks on /decode (and /oip against the peers) at `clients`:
    (what, held, the numbers).
    held is None when a system it needs was not measured."""
    results: list[tuple[str, bool | None, str]] = []
    models = sorted({c.model for c in cells if c.system != RAW})
    for model in models:
        on = _find(cells, "service", model, "decode", clients)
        off = _find(cells, "service-nobatch", model, "decode", clients)
        what = f"{model}: batching on >= 3x batching off in req/s"
        if on and off and off.rps:
            results.append(
                (
                    what,
                    on.rps >= 3 * off.rps,
                    f"{on.rps:,.0f} vs {off.rps:,.0f} = {on.rps / off.rps:.2f}x",
                )
            )
        else:
            results.append((what, None, "not measured"))
        raw = raw_cell(cells, model)
        if model == "conv":
            what = "conv: service >= 0.8x raw engine in samples/s"
            if on and raw:
                ratio = on.sps / raw.sps
                results.append(
                    (what, ratio >= 0.8, f"{on.sps:,.0f} vs {raw.sps:,.0f} = {ratio:.2f}x")
                )
            else:
                results.append((what, None, "not measured"))
        results += _ahead_of_peers(cells, model, "decode", clients)
        results += _ahead_of_peers(cells, model, "oip", clients)
    return results


def _ahead_of_peers(
    cells: list[Cell], model: str, route: str, clients: int
) -> list[tuple[str, bool | None, str]]:
    """Whether the service (batching on) is ahead of each peer on `route` in req/s, p99 no
    worse (the same request on /oip: the Open Inference Protocol's /infer)."""
    on = _find(cells, "service", model, route, clients)
    results: list[tuple[str, bool | None, str]] = []
    peers = [
        c
        for c in cells
        if c.is_peer and c.model == model and c.route == route and c.clients == clients
    ]
    for peer in peers:
        where = "" if route == "decode" else f" on /{route}"
        what = f"{model}: service ahead of {peer.system}{where} in req/s, p99 no worse"
        if on:
            held = on.rps > peer.rps and on.p99_ms <= peer.p99_ms
            detail = (
                f"req/s {on.rps:,.0f} vs {peer.rps:,.0f}; "
                f"p99 {on.p99_ms:.1f} vs {peer.p99_ms:.1f} ms"
            )
            results.append((what, held, detail))
        else:
            results.append((what, None, "service not measured"))
    return results


def targets_text(checks: list[tuple[str, bool | None, str]]) -> str:
    """One line a check."""
    mark = {True: "HOLDS ", False: "MISSED", None: "n/a   "}
    return "\n".join(f"  [{mark[held]}] {what}: {detail}" for what, held, detail in checks)
