"""Progress from inside a run: stage boundaries, and BERT batches within the long stages."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from booknlp_api.engine.errors import Cancelled

STAGE_WEIGHTS: dict[str, float] = {
    "parse": 0.13, "tagger": 0.47, "quotes": 0.01, "attribution": 0.2,
    "names": 0.02, "gender": 0.01, "coref": 0.13, "output": 0.03,
}
"""Share of a whole run each stage takes (measured on a novel, small model, CPU); used for ETAs."""


@dataclass(frozen=True)
class StageProgress:
    stage: str
    fraction: float
    """How far this stage is, 0..1."""
    elapsed: float
    """Seconds since this stage started."""


ProgressCallback = Callable[[StageProgress], None]


class RunTracker:
    """Carries one run's progress callback and cancel flag to the stage in progress.

    Only the process that made it reports: a forked child running some of a stage's batches
    (``forked_batches.py``) inherits a copy whose callback may write to the job store's connection.
    """

    def __init__(self, callback: ProgressCallback | None, cancel: threading.Event | None) -> None:
        self._pid = os.getpid()
        self._callback = callback
        self._cancel = cancel
        self.stage = ""
        self._started = time.monotonic()
        self._batches_expected = 0
        self._batches_done = 0

    def start(self, stage: str) -> None:
        self.check_cancelled()
        self.stage = stage
        self._started = time.monotonic()
        self._batches_expected = self._batches_done = 0
        self._report(0.0)

    def finish(self) -> None:
        self._report(1.0)

    def expect_batches(self, count: int) -> None:
        self._batches_expected = count
        self._batches_done = 0

    def batch(self) -> None:
        """Called before each BERT batch: move progress on, and stop here if cancelled."""
        if os.getpid() != self._pid:
            return
        self.check_cancelled()
        self._batches_done += 1
        if self._batches_expected:
            self._report(min(0.99, (self._batches_done - 1) / self._batches_expected))

    def check_cancelled(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise Cancelled(f"cancelled during {self.stage or 'start-up'}")

    def _report(self, fraction: float) -> None:
        if self._callback is not None:
            self._callback(StageProgress(self.stage, fraction, time.monotonic() - self._started))
