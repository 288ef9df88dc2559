"""The bench's bookkeeping (no timing here: benchmarks are benchmarks, not tests)."""

from __future__ import annotations

from pathlib import Path

from bench.peers.common import BatchStats, read_stats
from bench.profile import summarize
from bench.report import RAW, Cell, best_peer, markdown_table, targets


def _cell(system: str, clients: int, rps: float, p99: float, model: str = "conv") -> Cell:
    return Cell(
        system=system, label=system, model=model, route="decode", clients=clients, rps=rps,
        sps=rps, p50_ms=p99 / 2, p99_ms=p99, mean_batch=1.0,
        is_peer=system in {"triton", "bentoml", "litserve"},
    )  # fmt: skip


def _cells() -> list[Cell]:
    raw = Cell(
        RAW, "raw", "conv", "*", 0, rps=2.0, sps=128.0, p50_ms=500, p99_ms=510, mean_batch=64
    )
    return [
        raw,
        _cell("service", 64, rps=110.0, p99=700.0),
        _cell("service-nobatch", 64, rps=30.0, p99=2500.0),
        _cell("triton", 64, rps=100.0, p99=650.0),
        _cell("bentoml", 64, rps=60.0, p99=1200.0),
    ]


def test_best_peer_is_the_one_with_most_requests() -> None:
    peer = best_peer(_cells(), "conv", "decode", 64)
    assert peer is not None and peer.system == "triton"


def test_targets_report_each_check_with_its_numbers() -> None:
    checks = {what: held for what, held, _ in targets(_cells())}
    assert checks["conv: batching on >= 3x batching off in req/s"] is True
    assert checks["conv: service >= 0.8x raw engine in samples/s"] is True  # 110 / 128
    assert checks["conv: service ahead of triton in req/s, p99 no worse"] is False  # p99 700 > 650
    assert checks["conv: service ahead of bentoml in req/s, p99 no worse"] is True


def test_targets_say_not_measured_when_a_system_is_missing() -> None:
    cells = [c for c in _cells() if c.system != "service-nobatch"]
    checks = {what: held for what, held, _ in targets(cells)}
    assert checks["conv: batching on >= 3x batching off in req/s"] is None


def test_markdown_table_shows_ratios_to_raw_engine_and_best_peer() -> None:
    table = markdown_table(_cells(), "conv", "decode")
    service_row = next(line for line in table.splitlines() if line.startswith("| service |"))
    assert "110 (55.00, 1.10)" in service_row  # req/s vs raw calls/s and vs triton


def test_batch_stats_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "stats"
    stats = BatchStats(str(path))
    stats.record(3)
    stats.record(5)
    assert read_stats(path) == (2, 8)
    assert read_stats(tmp_path / "missing") == (0, 0)


def test_profile_summary_counts_self_and_inclusive(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks.txt"
    stacks.write_text(
        "main (a.py:1);handle (b.py:2);encode (c.py:3) 3\nmain (a.py:1);handle (b.py:2) 1\n"
    )
    summary = summarize(stacks)
    assert "4 samples" in summary
    assert "75.0%  encode (c.py)" in summary
    assert "100.0%  handle (b.py)" in summary
