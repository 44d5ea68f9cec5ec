"""The worker: a thread in a worker process (``jobs.process``) that runs queued jobs one at a time on its engine.

It claims a job in the store before running it, renews its lease every ``heartbeat_seconds`` (and
picks up cancellations asked for by other processes then), writes progress as the engine reports it,
and publishes the result atomically (``jobs.files``). A failing job never stops the worker. On
``stop`` (SIGTERM) the running job gets ``shutdown_grace_seconds`` to finish; after that it is asked
to stop at the next stage or batch boundary and put back in the queue, and if the engine is deep in
a stage with no boundary in sight, it is put back regardless and its late result will be refused.
A job past its time limit (``job_timeout_seconds``) is stopped the same way, at its next boundary, and
fails with code ``timeout``; the worker goes on to the next job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from booknlp_api.config import Settings
from booknlp_api.engine.errors import Cancelled, EngineError
from booknlp_api.engine.progress import StageProgress
from booknlp_api.engine.service import NLPService
from booknlp_api.jobs import metrics
from booknlp_api.jobs.errors import DatabaseUnavailable
from booknlp_api.jobs.files import JobFiles
from booknlp_api.jobs.progress import JobProgress
from booknlp_api.jobs.records import AnalysisInfo, Job, JobError, job_error
from booknlp_api.jobs.recovery import Recovery
from booknlp_api.jobs.results import chosen_sections, store_result_json
from booknlp_api.jobs.signals import Signals
from booknlp_api.jobs.store import Ended, JobStore, WorkerRecord
from booknlp_api.jobs.wake import FINISHED, QUEUED
from booknlp_api.logs import job_context

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
"""Fallback: how often an idle worker looks at the queue unasked. Every job queued, by any process on the
same data folder or database, wakes it at once (``jobs.signals``); the poll covers a wake-up that cannot arrive."""
PROGRESS_EVERY = 0.25
"""Seconds between progress writes: smooth for a poller, a handful of writes a second at most."""
RECORD_RETRY = 1.0
"""Seconds between attempts to record a run's end while the database is unavailable."""
CANCEL_WAIT = 2.0
"""On stop, seconds to wait for a cancelled run to reach a boundary before re-queuing it anyway."""

_UNEXPECTED = JobError("internal_error", "an unexpected error occurred; it has been logged")


@dataclass
class _Running:
    job: Job
    cancel: threading.Event
    timed_out: threading.Event


def _time_up(running: _Running) -> None:
    # Stops the run at its next stage or batch boundary, as a cancellation does; _run records why.
    running.timed_out.set()
    running.cancel.set()


class JobWorker:
    def __init__(self, settings: Settings, engine: NLPService, store: JobStore, signals: Signals,
                 files: JobFiles) -> None:
        self.settings = settings
        self.engine = engine
        self.store = store
        self.signals = signals
        self.files = files
        now = time.time()
        self.record = WorkerRecord(id=f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}",
                                   host=socket.gethostname(), pid=os.getpid(), started_at=now, heartbeat_at=now)
        self.recovery = Recovery(store, signals, files, self.record, lease_seconds=settings.lease_seconds,
                                 max_attempts=settings.max_job_attempts, ttl_seconds=settings.job_ttl_seconds)
        self._running: _Running | None = None
        self._stopping = threading.Event()
        self._beats_over = threading.Event()
        self._wake = signals.doorbell(QUEUED)
        self._thread = threading.Thread(target=self._loop, name="job-worker", daemon=True)
        self._beat = threading.Thread(target=self._heartbeats, name="job-heartbeat", daemon=True)
        self._last_upkeep = 0.0

    # -- control ----------------------------------------------------------------------------------
    def register(self) -> None:
        """Record this worker ('loading') and start its heartbeats, before the slow model load."""
        if not self._beat.is_alive():
            self.store.register_worker(self.record)
            self._beat.start()

    def start(self) -> None:
        self.register()
        self._thread.start()

    def failed(self, error: str) -> None:
        """Record why this worker cannot run jobs; the record stays (readiness reports it), the beats end."""
        self.store.set_worker_state(self.record.id, "failed", error=error, device=self.record.device)
        self._end_beats()

    def wake(self) -> None:
        self._wake.ring()

    def cancel(self, job_id: str) -> None:
        """Stop the job now if this worker runs it (others notice at their next heartbeat)."""
        running = self._running
        if running is not None and running.job.id == job_id:
            running.cancel.set()

    def stop(self, grace: float) -> None:
        """Finish or re-queue the running job, within about ``grace`` + ``CANCEL_WAIT`` seconds."""
        if self._thread.is_alive():
            self._stop_loop(grace)
        if self._beat.is_alive():
            self._end_beats()
            self.store.forget_worker(self.record.id)
        self._wake.close()

    def _stop_loop(self, grace: float) -> None:
        self._stopping.set()
        self._wake.ring()
        self._thread.join(grace)
        running = self._running
        if self._thread.is_alive() and running is not None:
            running.cancel.set()
            self._thread.join(CANCEL_WAIT)
        if self._thread.is_alive() and running is not None and self.store.requeue(running.job.id, self.record.id):
            self.signals.notify(QUEUED)
            log.warning("job %s re-queued: still running at shutdown", running.job.id, extra={"job_id": running.job.id})

    def _end_beats(self) -> None:
        self._beats_over.set()
        self._beat.join(self.settings.heartbeat_seconds + 1)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self._upkeep_if_due()
                self._wake.clear()
                job = self.store.claim_next(self.record.id, time.time())
                if job is None:
                    self._wake.wait(POLL_SECONDS)
                elif self._stopping.is_set() and self.store.requeue(job.id, self.record.id):
                    self.signals.notify(QUEUED)  # claimed just as the stop began: another worker's now
                else:
                    self._run(job)
            except Exception:
                # The database failing (down, disk full, locked too long) must not end the worker.
                log.exception("job worker: unexpected error; carrying on")
                self._stopping.wait(POLL_SECONDS)

    def _upkeep_if_due(self) -> None:
        now = time.time()
        if now - self._last_upkeep >= self.settings.lease_seconds / 2:
            self._last_upkeep = now
            self.recovery.run(now)

    def _heartbeats(self) -> None:
        # Beats go on through a stop's grace period: the job being finished is still leased.
        while not self._beats_over.wait(self.settings.heartbeat_seconds):
            try:
                self.store.heartbeat(self.record.id, time.time())
                running = self._running
                if running is not None and self.store.cancel_requested(running.job.id):
                    running.cancel.set()
            except Exception:
                log.exception("job heartbeat failed; retrying")

    # -- one job ----------------------------------------------------------------------------------
    def _run(self, job: Job) -> None:
        with job_context(job.id):
            self._run_claimed(job)

    def _run_claimed(self, job: Job) -> None:
        running = self._running = _Running(job, threading.Event(), threading.Event())
        if job.cancel_requested:
            running.cancel.set()
        run = self.files.new_run(job.id)
        log.info("job %s: running (attempt %d)", job.id, job.attempts)
        limit = self.time_limit(job)
        timer = threading.Timer(limit, _time_up, (running,)) if limit is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        started = time.monotonic()
        try:
            info = self._analyze(job, run, running.cancel)
        except Cancelled:
            if running.timed_out.is_set():
                error = JobError("timeout", f"the job ran longer than its limit of {limit:.3g} s")
                self._recorded(lambda: self._end(job, "failed", error))
            else:
                self._recorded(lambda: self._interrupted(job))
        except EngineError as exc:
            engine_error = job_error(exc)
            self._recorded(lambda: self._end(job, "failed", engine_error))
        except Exception:
            log.exception("job %s failed unexpectedly", job.id)
            self._recorded(lambda: self._end(job, "failed", _UNEXPECTED))
        else:
            metrics.job_analysed(info, time.monotonic() - started)
            self._recorded(lambda: self._publish(job, run, info))
        finally:
            metrics.gpu_memory(self.engine.device_info())
            if timer is not None:
                timer.cancel()
            self.files.discard_run(run)
            self._running = None

    def _recorded(self, outcome: Callable[[], None]) -> None:
        """Record how the run ended, waiting out the database being away (restarting, say): a run whose end
        is never recorded would keep its lease alive through the heartbeats and hold the job forever."""
        while True:
            try:
                outcome()
                return
            except DatabaseUnavailable:
                log.warning("job database unavailable; recording the job's end again in %.0f s", RECORD_RETRY)
                if self._beats_over.wait(RECORD_RETRY):
                    return  # stopped for good: the lease runs out and recovery re-runs the job

    def time_limit(self, job: Job) -> float | None:
        """Seconds this job may run: the fixed limit plus its share per 1,000 characters; None: no limit."""
        base = self.settings.job_timeout_seconds
        if base is None:
            return None
        return base + self.settings.job_timeout_seconds_per_1000_chars * job.text_chars / 1000

    def _analyze(self, job: Job, run: Path, cancel: threading.Event) -> AnalysisInfo:
        progress = JobProgress(job.pipeline)
        last_write = 0.0

        def report(step: StageProgress) -> None:
            nonlocal last_write
            progress.update(step)
            if time.monotonic() - last_write >= PROGRESS_EVERY or step.fraction >= 1.0:
                last_write = time.monotonic()
                try:
                    self.store.save_progress(job.id, self.record.id, progress.snapshot(), time.time())
                except (SQLAlchemyError, DatabaseUnavailable):
                    log.warning("job %s: progress not saved this time", job.id, exc_info=True)

        analysis = self.engine.analyze(self.files.read_text(job.id), out_dir=run, model=job.model,
                                       pipeline=list(job.pipeline), book_id=job.book_id, progress=report, cancel=cancel,
                                       precision=job.precision)
        info = analysis.summary()
        store_result_json(run, job.book_id, info, chosen_sections(job))
        return info

    def _publish(self, job: Job, run: Path, info: AnalysisInfo) -> None:
        name = self.files.publish(run)
        now = time.time()
        expires_at = now + self.settings.job_ttl_seconds
        ended = self.store.finish(job.id, self.record.id, "succeeded", now=now, expires_at=expires_at, analysis=info,
                                  result_dir=name)
        if ended:
            self.signals.notify(FINISHED)  # a request waiting for this result answers now
            self._released(ended)
            metrics.job_finished("succeeded", None)
            self.files.drop_other_runs(job.id, keep=name)
            self.files.delete_text(job.id)
            log.info("job %s: succeeded", job.id)
        else:
            self.files.delete_result(name)  # the lease went to another run; that one's result counts
            log.warning("job %s: finished after losing its lease; result discarded", job.id)

    def _interrupted(self, job: Job) -> None:
        if self._stopping.is_set() and not self.store.cancel_requested(job.id):
            if self.store.requeue(job.id, self.record.id):
                self.signals.notify(QUEUED)
                log.info("job %s: re-queued at shutdown", job.id)
        else:
            self._end(job, "cancelled", None)

    def _end(self, job: Job, status: str, error: JobError | None) -> None:
        now = time.time()
        ended = self.store.finish(job.id, self.record.id, status, now=now,
                                  expires_at=now + self.settings.job_ttl_seconds, error=error)
        if ended:
            self.signals.notify(FINISHED)
            self._released(ended)
            metrics.job_finished(status, error)
            self.files.delete_text(job.id)
            log.info("job %s: %s%s", job.id, status, f" ({error.code})" if error is not None else "")

    def _released(self, ended: Ended) -> None:
        if ended.released:  # the owner's waiting books queued in its place: other idle workers may take them
            self.signals.notify(QUEUED)
