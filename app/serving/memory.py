"""The memory budget (`VAE_MEMORY_BUDGET_MB`): what the loaded versions and one request's peak may
take together, and estimates of a spatial decode's or encode's peak, so that a request too large
for it is tiled or refused before it runs, not after the machine swaps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.config import Settings
from app.repository.manifest import Manifest

MIB = 1024 * 1024
BUDGET_SHARE = 0.75  # of the container's limit (or the machine's memory) when none is set
CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),
)


def memory_limit_bytes() -> int:
    """The container's memory limit (cgroup v2, then v1), else the machine's memory."""
    for path in CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 8 * 1024 * MIB  # pragma: no cover - not Linux


def budget_bytes(settings: Settings) -> int:
    """VAE_MEMORY_BUDGET_MB, or 3/4 of the container's limit."""
    if settings.memory_budget_mb is not None:
        return settings.memory_budget_mb * MIB
    return int(memory_limit_bytes() * BUDGET_SHARE)


def version_bytes(directory: Path) -> int:
    """A loaded version's resident size, estimated from its graph files."""
    return sum(path.stat().st_size for path in directory.glob("*.onnx")) * 2


def _config(manifest: Manifest) -> dict[str, object]:
    config = manifest.source.get("config")
    return config if isinstance(config, dict) else {}


def has_global_attention(manifest: Manifest) -> bool:
    """Whether the decoder's receptive field is the whole image (AutoencoderKL: a mid-block
    attention and GroupNorm), so that tiling changes its result."""
    return manifest.source.get("class") == "AutoencoderKL"


def decode_peak_bytes(manifest: Manifest, count: int, height: int, width: int) -> int:
    """The estimated peak memory of decoding `count` images height x width in one piece."""
    config = _config(manifest)
    channels = config.get("block_out_channels") or [64]
    first = int(channels[0]) if isinstance(channels, list) and channels else 64
    activations = 6 * first * height * width * 4
    attention = 0
    if has_global_attention(manifest) and manifest.spatial is not None:
        tokens = (height // manifest.spatial.downscale) * (width // manifest.spatial.downscale)
        attention = 2 * tokens * tokens * 4
    return count * (activations + attention)


def encode_peak_bytes(manifest: Manifest, count: int, height: int, width: int) -> int:
    """The estimated peak memory of encoding `count` images height x width in one piece."""
    return decode_peak_bytes(manifest, count, height, width)


@dataclass
class MemoryBudget:
    """The budget and what the loaded versions hold of it."""

    total: int
    held: int = 0

    def request_fits(self, peak: int) -> bool:
        """Whether one request of estimated `peak` bytes fits beside the loaded versions."""
        return self.held + peak <= self.total
