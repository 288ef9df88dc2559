"""bench/soak.py's verdict: growth measured after the warm-up, 429s allowed, anything else lost."""

from __future__ import annotations

from typing import Any

from bench.soak import Sample, summarize, verdict


def client(statuses: dict[str, int], timeouts: int = 0) -> dict[str, Any]:
    errors = {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": timeouts}
    latency = {"mean": 1000.0, "p50": 900, "p99": 5000, "max": 9000}
    return {"requests": sum(statuses.values()), "statuses": statuses, "errors": errors,
            "latency_us": latency}  # fmt: skip


def samples(rss_end: float, fds_end: int) -> list[Sample]:
    return [
        Sample(0.0, 100.0, 17, 13, {}),
        Sample(30.0, 120.0, 81, 13, {"/decode 200": 300, "/decode 429": 10}),
        Sample(60.0, 121.0, 81, 13, {"/decode 200": 600, "/decode 429": 20}),
        Sample(120.0, rss_end, fds_end, 13, {"/decode 200": 1200, "/decode 429": 40}),
        Sample(125.0, rss_end, 17, 13, {"/decode 200": 1264, "/decode 429": 40}),  # after load
    ]


def test_a_steady_soak_with_429s_passes() -> None:
    summary = summarize(samples(122.0, 81), client({"200": 1200, "429": 40}), 60.0, 120.0)
    assert summary["rss_mib"]["growth_after_warmup"] == 1.0  # the warm-up's 20 MiB not counted
    assert summary["fds"]["growth_after_warmup"] == 0
    assert summary["rejected_429"] == 40 and summary["lost"] == 0
    assert summary["ok_per_s_after_warmup"]["/decode"] == 10.0
    assert verdict(summary) == []


def test_growth_timeouts_and_5xx_fail() -> None:
    summary = summarize(samples(200.0, 120), client({"200": 1190, "503": 10}, 2), 60.0, 120.0)
    assert summary["lost"] == 12
    problems = " ".join(verdict(summary))
    assert "RSS grew" in problems and "fds grew" in problems and "12 requests lost" in problems
