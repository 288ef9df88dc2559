#!/usr/bin/env python3
"""Container healthcheck (the images have no curl): exit 0 when the service answers 200.

vae-healthcheck api      GET /v2/health/ready on $VAE_PORT (default 8000): ready to answer
vae-healthcheck worker   GET /metrics on $VAE_WORKER_METRICS_PORT (default 9100): the worker
                         process is up (its metrics thread lives in the worker's parent)
"""

from __future__ import annotations

import os
import sys
import urllib.request

CHECKS = {
    "api": ("VAE_PORT", "8000", "/v2/health/ready"),
    "worker": ("VAE_WORKER_METRICS_PORT", "9100", "/metrics"),
}


def main() -> int:
    role = sys.argv[1] if len(sys.argv) > 1 else "api"
    variable, default, path = CHECKS[role]
    url = f"http://127.0.0.1:{os.environ.get(variable) or default}{path}"
    try:
        with urllib.request.urlopen(url, timeout=4) as reply:
            return 0 if reply.status == 200 else 1
    except OSError as error:
        print(f"{url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
