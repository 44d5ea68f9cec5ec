"""The workers' own records in the job database: who is running, where, on which device, with which models.

``/v1/ready`` and ``/metrics`` read them; a worker registers at start, reports its state as its models
load, and is forgotten when it stops (recovery forgets the ones whose process died).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import Row, delete, insert, select, update

from booknlp_api.jobs.database import Database
from booknlp_api.jobs.tables import workers

WorkerState = Literal["loading", "ready", "failed"]


@dataclass(frozen=True)
class WorkerRecord:
    id: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    state: WorkerState = "loading"
    error: str | None = None
    device: dict[str, Any] | None = None
    """The device the worker's models run on (``booknlp_api.device.DeviceInfo`` as a dict)."""
    models: list[dict[str, Any]] | None = None
    """The models it loaded: name, components, synthetic, seed, source, load_seconds."""


class WorkerRegistry:
    """The worker records of ``self.database`` (a part of ``JobStore``, kept apart to keep each file short)."""

    database: Database

    def register_worker(self, worker: WorkerRecord) -> None:
        values = {**asdict(worker), "device": _json(worker.device), "models": _json(worker.models)}
        with self.database.engine.begin() as conn:
            conn.execute(delete(workers).where(workers.c.id == worker.id))
            conn.execute(insert(workers).values(**values))

    def set_worker_state(self, worker_id: str, state: WorkerState, *, error: str | None = None,
                         device: dict[str, Any] | None = None, models: list[dict[str, Any]] | None = None) -> None:
        with self.database.engine.begin() as conn:
            conn.execute(update(workers).where(workers.c.id == worker_id).values(
                state=state, error=error, device=_json(device), models=_json(models)))

    def forget_worker(self, worker_id: str) -> None:
        with self.database.engine.begin() as conn:
            conn.execute(delete(workers).where(workers.c.id == worker_id))

    def workers(self) -> dict[str, WorkerRecord]:
        with self.database.reading() as conn:
            return {row.id: _worker(row) for row in conn.execute(select(workers)).fetchall()}


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _worker(row: Row[Any]) -> WorkerRecord:
    data = dict(row._mapping)
    for name in ("device", "models"):
        data[name] = None if data[name] is None else json.loads(data[name])
    return WorkerRecord(**data)
