"""The per-client rate limit over real HTTP: a burst, then 429 with Retry-After, the error body
and the rejection metric; cheap routes untouched; X-Forwarded-For only when proxies are trusted.

The refill rate is so slow (one request per 1000 s) that nothing refills during a test: no timing
assumptions."""

from __future__ import annotations

from pathlib import Path

from tests.support.processes import running_service

BURST = 3


def env(models_dir: Path, tmp: Path, trusted: int) -> dict[str, str]:
    return {
        "VAE_MODELS_DIR": str(models_dir),
        "VAE_DATA_DIR": str(tmp / "data"),
        "VAE_RATE_LIMIT_PER_S": "0.001",
        "VAE_RATE_LIMIT_BURST": str(BURST),
        "VAE_RATE_LIMIT_TRUSTED_PROXIES": str(trusted),
    }


def rejected(metrics_text: str) -> float:
    for line in metrics_text.splitlines():
        if line.startswith("vae_rejections_total{") and 'reason="rate_limited"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_a_client_past_its_burst_gets_429(models_dir: Path, tmp_path: Path) -> None:
    with (
        running_service(env(models_dir, tmp_path, trusted=0), tmp_path) as service,
        service.client() as http,
    ):
        for _ in range(BURST):
            assert http.post("/sample", json={"n": 1, "seed": 1}).status_code == 200
        over = http.post("/decode", json={"latents": [[0.0] * 32]})
        assert over.status_code == 429, over.text
        assert int(over.headers["retry-after"]) >= 1
        body = over.json()
        assert body["error"] == "rate_limited" and "too many requests" in body["message"]
        # cheap routes are not limited
        assert http.get("/models/mnist").status_code == 200
        assert http.get("/v2/health/ready").status_code == 200
        # the peer decides, whatever X-Forwarded-For claims
        spoofed = http.post("/sample", json={"n": 1}, headers={"X-Forwarded-For": "1.2.3.4"})
        assert spoofed.status_code == 429
        assert rejected(http.get("/metrics").text) == 2


def test_behind_a_trusted_proxy_the_forwarded_client_counts(
    models_dir: Path, tmp_path: Path
) -> None:
    with (
        running_service(env(models_dir, tmp_path, trusted=1), tmp_path) as service,
        service.client() as http,
    ):

        def sample(chain: str) -> int:
            headers = {"X-Forwarded-For": chain}
            return http.post("/sample", json={"n": 1}, headers=headers).status_code

        assert [sample("10.1.1.1") for _ in range(BURST)] == [200] * BURST
        assert sample("10.1.1.1") == 429
        # a spoofed entry to the left of what the proxy appended changes nothing
        assert sample("9.9.9.9, 10.1.1.1") == 429
        assert sample("10.2.2.2") == 200
