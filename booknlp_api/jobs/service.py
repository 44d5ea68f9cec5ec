"""The job layer's one entry point: submit, look up, list, cancel and wait for jobs, and read results.

Built once per process around the engine. The API process only submits and reads (its engine just
reads model manifests); a worker process (``jobs.process``) adds the worker with ``new_worker``.
Everything durable lives in the job database (``jobs.database``) and the data folder, shared by every process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import time
import uuid
from functools import cache

import booknlp_api
from booknlp_api.config import Settings, resolve_spacy_model
from booknlp_api.engine.errors import InvalidText, ModelNotAvailable
from booknlp_api.engine.pipeline import parse_pipeline
from booknlp_api.engine.service import NLPService
from booknlp_api.engine.text import TextTooLarge
from booknlp_api.jobs import metrics
from booknlp_api.jobs.database import Database, database_url
from booknlp_api.jobs.database_files import DatabaseFiles
from booknlp_api.jobs.errors import (
    IdempotencyConflict,
    JobAlreadyFinished,
    JobNotFound,
    QueueFull,
    TooManyActiveJobs,
)
from booknlp_api.jobs.files import JobFiles
from booknlp_api.jobs.records import Job, Submission
from booknlp_api.jobs.results import JobResults, chosen_sections
from booknlp_api.jobs.signals import Signals
from booknlp_api.jobs.store import DuplicateKey, JobStore, WorkerRecord
from booknlp_api.jobs.wake import FINISHED, QUEUED, FinishWatch
from booknlp_api.jobs.worker import JobWorker
from booknlp_api.models.manifest import read_manifest

log = logging.getLogger(__name__)

RETRY_AFTER_BOUNDS = (5, 600)
WAIT_POLL_SECONDS = 1.0
"""Fallback: how often a waiting request reads its job even when no wake-up came."""


class JobService:
    def __init__(self, settings: Settings, engine: NLPService) -> None:
        self.settings = settings
        self.engine = engine
        self.database = Database(database_url(settings.database_url, settings.data_dir))
        self.store = JobStore(self.database)
        # A job queued or ended, in any process, wakes the idle workers or the waiting requests (jobs.signals).
        self.signals = Signals(settings.data_dir, self.database)
        self.finishes = FinishWatch(settings.data_dir, self.signals.doorbell)
        # On PostgreSQL texts and results live in the database too: no folder to share between machines.
        self.files = DatabaseFiles(settings.data_dir, self.database) if self.database.is_postgres \
            else JobFiles(settings.data_dir)
        self.results = JobResults(self.files)
        self.worker: JobWorker | None = None
        """The worker running jobs in this process, if any (tests; worker processes)."""

    def new_worker(self) -> JobWorker:
        self.worker = JobWorker(self.settings, self.engine, self.store, self.signals, self.files)
        return self.worker

    def start(self) -> None:
        """Run jobs in this process too (a worker thread)."""
        self.new_worker().start()

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop(self.settings.shutdown_grace_seconds)
        self.finishes.close()
        self.signals.close()
        self.database.close()

    # -- submitting -------------------------------------------------------------------------------
    def submit(self, submission: Submission, max_active: int | None = None, *,
               held: bool = False) -> tuple[Job, bool]:
        """The job for this submission, and whether it is new (False: the Idempotency-Key's earlier job).

        ``max_active``: how many jobs the submission's owner may have queued or running at once. ``held``
        (a batch's book): the job starts ``waiting`` and is queued within ``max_active`` by ``release``.
        """
        job = self._new_job(submission)
        if job.idempotency_key and (earlier := self.store.by_idempotency_key(job.idempotency_key)):
            return self._same_request(earlier, job), False
        if submission.cache and self.settings.result_cache:
            source = self.store.cached_source(job.cache_key, job.created_at)
            if source is not None and source.result_dir is not None:
                stored = self._insert(self._from_cache(job, source))
                self._accepted(stored, job)
                return stored, True
        if held:
            job = dataclasses.replace(job, status="waiting", max_active=max_active)
        else:
            self._check_room(submission.owner, max_active)
        self.files.save_text(job.id, submission.text)
        stored = self._insert(job, text=True)
        if stored.id == job.id and not held:
            self.queued()
        self._accepted(stored, job)
        return stored, stored.id == job.id

    def _check_room(self, owner: str | None, max_active: int | None) -> None:
        if max_active is not None and owner is not None:
            active = self.store.count_active(owner)
            if active >= max_active:
                raise TooManyActiveJobs(active, max_active, self.retry_after())
        queued = self.store.count("queued")
        if queued >= self.settings.max_queued_jobs:
            raise QueueFull(queued, self.retry_after())

    def release(self, owner: str | None) -> int:
        """Queue the owner's waiting jobs that fit under its limit now (workers are woken); how many."""
        released = self.store.release(owner)
        if released:
            self.queued()
        return released

    def queued(self) -> None:
        """Wake the workers: jobs were queued."""
        self.signals.notify(QUEUED)
        if self.worker is not None:
            self.worker.wake()

    @staticmethod
    def _accepted(stored: Job, job: Job) -> None:
        if stored.id == job.id:  # else an earlier job with the same Idempotency-Key answers
            metrics.job_submitted(stored)
            log.info("job %s: %s (%d characters, model %s)", stored.id, stored.status, stored.text_chars,
                     stored.model, extra={"job_id": stored.id})

    def _new_job(self, submission: Submission) -> Job:
        text = submission.text
        if len(text) > self.settings.max_job_chars:
            raise TextTooLarge(self.settings.max_job_chars, "characters")
        if not text.strip():
            raise InvalidText("the text is empty or only whitespace; there is nothing to analyse")
        pipeline = tuple(parse_pipeline(submission.pipeline).names())
        model = submission.model or self.settings.model
        available = sorted(self.engine.available_models())
        if model not in available:
            raise ModelNotAvailable(f"model {model!r} is not available; available: {', '.join(available) or 'none'}",
                                    available)
        precision = submission.precision or self.settings.precision
        self.engine.check_memory(text, model, precision)
        cache_key = self._cache_key(text, model, pipeline, submission.book_id, precision)
        request = json.dumps([cache_key, submission.sections, submission.text_offset])
        # Idempotency keys are the client's own namespace: two API keys may both send "retry-1".
        idempotency_key = submission.idempotency_key
        if idempotency_key is not None and submission.owner is not None:
            idempotency_key = f"{submission.owner}\n{idempotency_key}"
        return Job(id=uuid.uuid4().hex, seq=0, status="queued", book_id=submission.book_id, model=model,
                   pipeline=pipeline, sections=submission.sections, text_chars=len(text),
                   text_offset=submission.text_offset, cache_key=cache_key, created_at=time.time(),
                   idempotency_key=idempotency_key, owner=submission.owner, precision=precision,
                   request_hash=hashlib.sha256(request.encode()).hexdigest())

    def _cache_key(self, text: str, model: str, pipeline: tuple[str, ...], book_id: str, precision: str) -> str:
        """Same text, model files, pipeline, book id, precision and software: the same native files. Fast mode
        also names its options on this device (they change with the release and with the CPU's instructions)."""
        manifest = read_manifest(self.settings.models_dir / model)
        fast_mode = self.engine.fast_mode.describe(self.engine.device) if precision == "fast" else None
        parts = {"text": hashlib.sha256(text.encode()).hexdigest(), "model": model, "pipeline": pipeline,
                 "book_id": book_id, "precision": precision, "fast_mode": fast_mode,
                 "model_files": {path: f.sha256 for path, f in manifest.files.items()},
                 "software": _software(resolve_spacy_model(self.settings.spacy_model))}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def _from_cache(self, job: Job, source: Job) -> Job:
        assert source.result_dir is not None
        now = time.time()
        same_json = chosen_sections(job) == chosen_sections(source)
        copy = self.files.copy_result(source.result_dir, job.id, with_json=same_json)
        # Another key's job is never named: its id would tell this client that someone sent the same text.
        cached_from = source.id if source.owner == job.owner else None
        return dataclasses.replace(job, status="succeeded", started_at=now, finished_at=now,
                                   expires_at=now + self.settings.job_ttl_seconds, cached_from=cached_from,
                                   analysis=source.analysis, result_dir=copy)

    def _insert(self, job: Job, *, text: bool = False) -> Job:
        try:
            return self.store.insert(job)
        except DuplicateKey:
            # Two submissions raced with one Idempotency-Key: the first one recorded wins.
            if text:
                self.files.delete_text(job.id)
            if job.result_dir:
                self.files.delete_result(job.result_dir)
            assert job.idempotency_key is not None
            earlier = self.store.by_idempotency_key(job.idempotency_key)
            assert earlier is not None
            return self._same_request(earlier, job)

    @staticmethod
    def _same_request(earlier: Job, job: Job) -> Job:
        if earlier.request_hash != job.request_hash:
            assert job.idempotency_key is not None
            raise IdempotencyConflict(job.idempotency_key.rsplit("\n", 1)[-1], earlier.id)
        return earlier

    def retry_after(self) -> int:
        seconds = self.store.mean_run_seconds() or 30.0
        low, high = RETRY_AFTER_BOUNDS
        return int(min(high, max(low, seconds)))

    # -- looking up -------------------------------------------------------------------------------
    def get(self, job_id: str, owner: str | None = None) -> Job:
        """The job; with ``owner``, only if it is theirs (another's job is 'not found', never 'forbidden')."""
        job = self.store.get(job_id)
        if job is None or (owner is not None and job.owner != owner):
            raise JobNotFound(job_id)
        return job

    def position(self, job: Job) -> int | None:
        return self.store.queue_position(job) if job.status == "queued" else None

    def page(self, status: str | None, limit: int, offset: int, owner: str | None = None) -> tuple[list[Job], int]:
        return self.store.page(status, limit, offset, owner)

    async def wait(self, job_id: str, timeout: float) -> Job:
        """The job once finished, or as it is after ``timeout`` seconds.

        Woken when any job ends (``jobs.wake``); the store is read again every ``WAIT_POLL_SECONDS``
        in case a wake-up cannot arrive (a data folder shared across machines).
        """
        deadline = time.monotonic() + timeout
        with self.finishes.waiter() as finished:
            while True:
                job = await asyncio.to_thread(self.get, job_id)  # a store read: off the event loop
                left = deadline - time.monotonic()
                if job.finished or left <= 0:
                    return job
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(finished.wait(), min(WAIT_POLL_SECONDS, left))
                finished.clear()

    def live_workers(self) -> list[WorkerRecord]:
        """Workers heard from within the lease (a failed one stops beating but stays listed), newest first."""
        now = time.time()
        workers = [w for w in self.store.workers().values()
                   if w.state == "failed" or now - w.heartbeat_at <= self.settings.lease_seconds]
        return sorted(workers, key=lambda w: w.heartbeat_at, reverse=True)

    # -- cancelling -------------------------------------------------------------------------------
    def cancel(self, job_id: str, owner: str | None = None) -> Job:
        """Cancel a queued job now; ask a running one to stop at its next stage or batch boundary."""
        job = self.get(job_id, owner)
        if job.finished:
            raise JobAlreadyFinished(job)
        now = time.time()
        job = self.store.cancel(job_id, now, now + self.settings.job_ttl_seconds) or job
        if job.status == "cancelled":
            metrics.job_finished("cancelled", None)
            self.files.delete_text(job.id)
            self.signals.notify(FINISHED)
            self.queued()  # its owner's next waiting job may have taken its place
        if self.worker is not None:
            self.worker.cancel(job_id)  # at once; workers in other processes see the flag at their next heartbeat
        return job


@cache
def _software(spacy_model: str) -> dict[str, str | None]:
    def version(distribution: str) -> str | None:
        try:
            return importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {"booknlp-api": booknlp_api.__version__, "booknlp": version("booknlp"), "torch": version("torch"),
            "spacy": version("spacy"), spacy_model: version(spacy_model.replace("_", "-"))}
