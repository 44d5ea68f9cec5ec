"""Upkeep a worker runs at start and between jobs: nothing lost, nothing kept past its time.

* A running job whose worker is gone (its process no longer exists on this host, its heartbeat is
  older than the lease, or this process now holds its pid) goes back to the queue, ahead of fresh
  jobs, unless it was being cancelled or has used up ``max_job_attempts``.
* Finished jobs past ``expires_at`` lose their result files; files no job refers to are deleted.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from booknlp_api.jobs import metrics
from booknlp_api.jobs.files import JobFiles
from booknlp_api.jobs.records import Job, JobError
from booknlp_api.jobs.signals import Signals
from booknlp_api.jobs.store import JobStore, WorkerRecord
from booknlp_api.jobs.wake import QUEUED

log = logging.getLogger(__name__)

ORPHAN_MIN_AGE = 300.0
"""Seconds a file no job refers to is left alone, so a submission being written is never swept."""


@dataclass(frozen=True)
class Recovery:
    store: JobStore
    signals: Signals
    files: JobFiles
    me: WorkerRecord
    lease_seconds: float
    max_attempts: int
    ttl_seconds: float

    def run(self, now: float) -> None:
        self.recover_running(now)
        if self.store.release_all():  # waiting books with room left (a batch recorded just before a crash)
            self.signals.notify(QUEUED)
        self.expire(now)

    def recover_running(self, now: float) -> list[str]:
        """Requeue (or end) the running jobs of dead workers; their ids."""
        workers = self.store.workers()
        for worker in workers.values():
            if worker.id != self.me.id and self._dead(worker, now):
                self.store.forget_worker(worker.id)
        alive = set(self.store.workers())
        recovered = []
        for job in self.store.with_status("running"):
            stale = job.heartbeat_at is None or now - job.heartbeat_at > self.lease_seconds
            if job.worker_id != self.me.id and (job.worker_id not in alive or stale):
                self._recover(job, now)
                recovered.append(job.id)
        return recovered

    def expire(self, now: float) -> None:
        for job in self.store.expire(now):
            if job.result_dir:
                self.files.delete_result(job.result_dir)
            self.files.delete_text(job.id)
        live = {job_id for status in ("waiting", "queued", "running") for job_id in self.store.ids(status)}
        self.files.sweep(keep_results=self.store.result_dirs(), live_jobs=live, min_age=ORPHAN_MIN_AGE, now=now)

    def _dead(self, worker: WorkerRecord, now: float) -> bool:
        if now - worker.heartbeat_at > self.lease_seconds:
            return True
        if worker.host != self.me.host:
            return False
        # Same host: a container restarted keeps its pid, so our own pid under another id is a past life.
        return worker.pid == self.me.pid or not _pid_alive(worker.pid)

    def _recover(self, job: Job, now: float) -> None:
        if job.cancel_requested:
            self._end(job, "cancelled", None, now)
        elif job.attempts >= self.max_attempts:
            self._end(job, "failed", JobError("worker_lost", f"the worker running this job stopped {job.attempts} "
                                                             "times before it finished; giving up"), now)
        elif self.store.requeue(job.id, job.worker_id):
            self.signals.notify(QUEUED)
            log.warning("job %s: worker %s is gone; re-queued (attempt %d)", job.id, job.worker_id, job.attempts,
                        extra={"job_id": job.id})

    def _end(self, job: Job, status: str, error: JobError | None, now: float) -> None:
        ended = self.store.finish(job.id, job.worker_id, status, now=now, expires_at=now + self.ttl_seconds,
                                  error=error)
        if ended:
            if ended.released:
                self.signals.notify(QUEUED)
            metrics.job_finished(status, error)
            self.files.delete_text(job.id)
            log.warning("job %s: %s (its worker is gone)", job.id, status, extra={"job_id": job.id})


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
