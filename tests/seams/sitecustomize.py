"""A test seam for the processes tests start (servers and their worker processes), never for production.

Python imports ``sitecustomize`` at start-up from the path; tests put this folder first on the
PYTHONPATH of the processes they start. With ``HOLD_BATCHES_FILE`` set, the engine waits before each
BERT batch for as long as that file exists, unless the run is cancelled: a test can hold a job inside
a stage until it has acted on it (cancel, SIGTERM, SIGKILL), however fast the machine, then delete the
file to let it go on. The name has no ``BOOKNLP_`` prefix, which the API strips from its workers' env.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

HOLD_LIMIT_SECONDS = 300.0
"""A forgotten hold file never keeps a process waiting longer than this."""


def _install(hold: Path) -> None:
    from booknlp_api.engine.progress import RunTracker

    real_batch = RunTracker.batch

    def held_batch(self: RunTracker) -> None:
        deadline = time.monotonic() + HOLD_LIMIT_SECONDS
        cancel = self._cancel
        while hold.exists() and not (cancel is not None and cancel.is_set()) and time.monotonic() < deadline:
            time.sleep(0.02)
        real_batch(self)

    RunTracker.batch = held_batch  # type: ignore[method-assign]


if os.environ.get("HOLD_BATCHES_FILE"):
    _install(Path(os.environ["HOLD_BATCHES_FILE"]))
