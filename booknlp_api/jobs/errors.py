"""What the job layer refuses, and why; the API renders each as one HTTP status.

    JobsError
    ├── JobNotFound          no such job                                           (404)
    ├── QueueFull            max_queued_jobs are waiting; retry_after seconds      (503)
    ├── TooManyActiveJobs    the key has its maximum of jobs queued or running     (429)
    ├── IdempotencyConflict  the key was used for a different request              (422)
    ├── JobNotFinished       its result was asked for before it succeeded          (409)
    ├── JobAlreadyFinished   cancelling a job that has ended                       (409)
    ├── ResultExpired        the result was deleted at expires_at                  (410)
    ├── FormatNotProduced    e.g. the HTML report of a run without coref            (404)
    ├── BatchNotFound        no such batch, or another key's                        (404)
    ├── BatchNotFinished     a batch's result was asked for while jobs still run    (409)
    └── DatabaseUnavailable  the job database cannot be reached (or is locked)     (503)
"""

from __future__ import annotations

from booknlp_api.jobs.records import Job


class JobsError(Exception):
    """Base of every refusal of the job layer."""


class JobNotFound(JobsError):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job {job_id!r}; it never existed, or its record was removed")
        self.job_id = job_id


class QueueFull(JobsError):
    def __init__(self, queued: int, retry_after: int) -> None:
        super().__init__(f"the queue is full: {queued} jobs are waiting; retry in about {retry_after} s")
        self.queued = queued
        self.retry_after = retry_after


class TooManyActiveJobs(JobsError):
    def __init__(self, active: int, limit: int, retry_after: int) -> None:
        super().__init__(f"this key already has {active} jobs queued or running, its limit; retry when one has "
                         f"finished (in about {retry_after} s)")
        self.active = active
        self.limit = limit
        self.retry_after = retry_after


class IdempotencyConflict(JobsError):
    def __init__(self, key: str, job_id: str) -> None:
        super().__init__(f"Idempotency-Key {key!r} was used for job {job_id} with a different text or options")
        self.key = key
        self.job_id = job_id


class JobNotFinished(JobsError):
    def __init__(self, job: Job) -> None:
        why = {"waiting": "is waiting for the key's earlier jobs", "queued": "has not started",
               "running": "is still running", "failed": "failed",
               "cancelled": "was cancelled"}.get(job.status, job.status)
        super().__init__(f"job {job.id} {why}; it has no result")
        self.job = job


class JobAlreadyFinished(JobsError):
    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} has already {job.status}; there is nothing to cancel")
        self.job = job


class ResultExpired(JobsError):
    def __init__(self, job: Job) -> None:
        super().__init__(f"the result of job {job.id} expired and was deleted; submit the text again")
        self.job = job


class FormatNotProduced(JobsError):
    def __init__(self, job: Job, format_name: str, needs: str) -> None:
        super().__init__(f"job {job.id} ran the pipeline {', '.join(job.pipeline)}, which produces no {format_name}; "
                         f"it needs {needs}")
        self.job = job
        self.format_name = format_name


class DatabaseUnavailable(JobsError):
    """The job database refused or dropped the connection (a PostgreSQL restart, say); retry shortly."""

    retry_after = 5

    def __init__(self) -> None:
        super().__init__("the job database is unavailable; retry shortly")


class BatchNotFound(JobsError):
    def __init__(self, batch_id: str) -> None:
        super().__init__(f"no batch {batch_id!r}")
        self.batch_id = batch_id


class BatchNotFinished(JobsError):
    def __init__(self, batch_id: str, unfinished: int) -> None:
        super().__init__(f"batch {batch_id} has {unfinished} jobs still queued or running; its result comes once "
                         "every job has ended")
        self.batch_id = batch_id
        self.unfinished = unfinished
