"""The worker on the tiny engine: stopping finishes or re-queues the running job, never loses it."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from booknlp_api.config import Settings
from booknlp_api.engine.service import NLPService
from booknlp_api.jobs.records import Job, Submission
from booknlp_api.jobs.service import JobService


def _service(models_dir: Path, data_dir: Path, engine: NLPService) -> JobService:
    settings = Settings(models_dir=models_dir, model="tiny", data_dir=data_dir)
    return JobService(settings, engine)


def _until(jobs: JobService, job_id: str, statuses: set[str], timeout: float = 120) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (job := jobs.get(job_id)).status in statuses:
            return job
        time.sleep(0.02)
    pytest.fail(f"job {job_id} never reached {statuses}: {jobs.get(job_id)}")


def test_stopping_lets_the_running_job_finish_within_the_grace_period(
        tiny_models_dir: Path, tmp_path: Path, tiny_service: NLPService) -> None:
    jobs = _service(tiny_models_dir, tmp_path, tiny_service)
    jobs.start()
    job, _ = jobs.submit(Submission(text="Scrooge signed it. " * 40, pipeline=("supersense",)))
    _until(jobs, job.id, {"running"})
    jobs.worker.stop(grace=120)
    assert not jobs.worker.alive
    finished = jobs.get(job.id)
    assert finished.status == "succeeded" and finished.result_dir is not None
    assert jobs.store.workers() == {}


def test_a_job_stuck_inside_a_stage_is_requeued_at_stop_and_its_late_result_refused(
        tiny_models_dir: Path, tmp_path: Path, tiny_service: NLPService, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = _service(tiny_models_dir, tmp_path, tiny_service)
    release, entered = threading.Event(), threading.Event()
    real_analyze = tiny_service.analyze

    def deaf_to_cancel(text: str, **options: Any) -> Any:
        # A long stage with no batch boundary: the cancel flag is not looked at until it ends.
        entered.set()
        release.wait(60)
        return real_analyze(text, **{**options, "cancel": None})

    monkeypatch.setattr(jobs.engine, "analyze", deaf_to_cancel)
    jobs.start()
    job, _ = jobs.submit(Submission(text="Marley was dead.", pipeline=("supersense",)))
    assert entered.wait(60)
    jobs.worker.stop(grace=0)
    requeued = jobs.get(job.id)
    assert (requeued.status, requeued.worker_id, requeued.attempts) == ("queued", None, 1)
    assert jobs.queue.pending() == {job.id}

    release.set()  # the abandoned run now completes, too late
    deadline = time.monotonic() + 60
    while jobs.worker.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert jobs.get(job.id).status == "queued"
    assert list(jobs.files.results.iterdir()) == [] and list(jobs.files.work.iterdir()) == []
