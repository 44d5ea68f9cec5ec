"""The queue of job ids waiting for a worker: huey's storage, SQLite in the data folder by default.

huey deletes a message when it is dequeued, so a worker that dies mid-job takes its message with it.
The queue is therefore only a hand-over channel: the job store is the truth, and recovery pushes
again any queued job the queue lost (see ``jobs.recovery``). A message for a job that is no longer
queued is simply skipped, so a duplicate push is harmless.

For several workers on several machines, only the storage changes: ``RedisExpireHuey`` (or
``PriorityRedisExpireHuey``) in place of ``SqliteHuey``; see docs/JOBS.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from huey import SqliteHuey
from huey.api import Huey

QUEUE_NAME = "booknlp-jobs"
RECOVERED_PRIORITY = 10
"""Jobs put back after a crash or a stop run before fresh ones: they were first in line."""


class JobQueue(Protocol):
    def push(self, job_id: str, *, first: bool = False) -> None:
        """Add a job; ``first`` puts it ahead of every job pushed without."""

    def pop(self) -> str | None:
        """The next job id, removed from the queue; None when it is empty (never blocks)."""

    def pending(self) -> set[str]:
        """Ids of every job waiting in the queue."""

    def close(self) -> None: ...


def _never_run_here(job_id: str) -> None:
    raise RuntimeError(f"job {job_id} must be run by a JobWorker, not by a huey consumer")


class HueyJobQueue:
    """Job ids as huey tasks; any huey storage class works, ``SqliteHuey`` is the embedded default."""

    def __init__(self, huey: Huey) -> None:
        self.huey = huey
        self._task = huey.task(name="run_job")(_never_run_here)

    @classmethod
    def sqlite(cls, path: Path) -> HueyJobQueue:
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(SqliteHuey(QUEUE_NAME, filename=str(path), results=False, utc=True))

    def push(self, job_id: str, *, first: bool = False) -> None:
        self.huey.enqueue(self._task.s(job_id, priority=RECOVERED_PRIORITY if first else None))

    def pop(self) -> str | None:
        task = self.huey.dequeue()
        return None if task is None else str(task.args[0])

    def pending(self) -> set[str]:
        return {str(task.args[0]) for task in self.huey.pending()}

    def close(self) -> None:
        self.huey.storage.close()
