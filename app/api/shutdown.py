"""How `vae serve` ends: on SIGTERM (or Ctrl+C) uvicorn shuts down gracefully, then this
server exits with status 0.

uvicorn re-raises the signal that stopped it once its graceful shutdown is done (so that the
process "dies of" that signal), which makes a clean SIGTERM end with status 143 (-15 to a
parent), and a supervisor reads that as a crash. `GracefulServer` re-raises nothing after a
shutdown it completed; a forced one (a second Ctrl+C during the shutdown, uvicorn's
`force_exit`) still ends as uvicorn ends it. How requests still running past the shutdown bound
are logged: `app/api/connections.py`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import uvicorn

STARTUP_FAILURE = 3
"""The exit status of a server that never started (uvicorn's own)."""


class GracefulServer(uvicorn.Server):
    """uvicorn's server, whose completed graceful shutdown exits with status 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            if not self.force_exit:
                # The signal asked for this shutdown and has had it: nothing to re-raise.
                self._captured_signals.clear()


def run(config: uvicorn.Config) -> None:
    """Serve `config` until a signal stops it (what `uvicorn.run` does for one process, with
    `GracefulServer`); exits with `STARTUP_FAILURE` if the server never started."""
    server = GracefulServer(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)
