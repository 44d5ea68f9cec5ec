"""A job's overall progress, from the engine's per-stage reports, weighted by what each stage costs."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

from booknlp_api.engine.pipeline import parse_pipeline
from booknlp_api.engine.progress import STAGE_WEIGHTS, StageProgress
from booknlp_api.engine.stages import STAGES

StageStatus = Literal["pending", "running", "done"]

ETA_AFTER = 0.05
"""Fraction done before an ETA is offered: earlier ones are mostly noise (model loading, parsing)."""


def stages_run(pipeline: Iterable[str]) -> list[str]:
    """The engine stages a run of ``pipeline`` goes through, in order."""
    chosen = parse_pipeline(list(pipeline))
    return [stage.name for stage in STAGES if stage.applies(chosen)] + ["output"]


class JobProgress:
    """Folds ``StageProgress`` reports into one fraction, per-stage status and seconds, and an ETA."""

    def __init__(self, pipeline: Iterable[str], clock: Callable[[], float] = time.monotonic) -> None:
        self.stages = stages_run(pipeline)
        total = sum(STAGE_WEIGHTS.get(name, 0.0) for name in self.stages) or 1.0
        self._weights = {name: STAGE_WEIGHTS.get(name, 0.0) / total for name in self.stages}
        self._fractions = dict.fromkeys(self.stages, 0.0)
        self._seconds: dict[str, float] = {}
        self._clock = clock
        self._started = clock()
        self._stage_started = self._started
        self.stage: str | None = None

    def update(self, step: StageProgress) -> None:
        if step.stage not in self._fractions:
            return
        self.stage = step.stage
        self._stage_started = self._clock() - step.elapsed
        self._fractions[step.stage] = step.fraction
        self._seconds[step.stage] = step.elapsed

    @property
    def fraction(self) -> float:
        return min(1.0, sum(self._weights[name] * done for name, done in self._fractions.items()))

    def eta_seconds(self) -> float | None:
        fraction = self.fraction
        if fraction < ETA_AFTER:
            return None
        return max(0.0, (self._clock() - self._started) * (1 - fraction) / fraction)

    def snapshot(self) -> dict[str, Any]:
        """The JSON a job record keeps: what ``GET /v1/jobs/{id}`` shows as ``progress``."""
        eta = self.eta_seconds()
        return {
            "fraction": round(self.fraction, 4),
            "stage": self.stage,
            "elapsed_seconds": round(self._clock() - self._started, 2),
            "eta_seconds": None if eta is None else round(eta, 1),
            "stages": [self._stage(name) for name in self.stages],
        }

    def _stage(self, name: str) -> dict[str, Any]:
        done = self._fractions[name]
        status: StageStatus = "done" if done >= 1.0 else "running" if name == self.stage else "pending"
        seconds = self._clock() - self._stage_started if status == "running" else self._seconds.get(name)
        return {"name": name, "status": status, "fraction": round(done, 4),
                "seconds": None if seconds is None else round(seconds, 2)}
