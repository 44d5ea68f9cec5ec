"""The worker on the tiny engine: stopping finishes or re-queues the running job, never loses it.

Everything that goes through the store runs on both databases (``database_url``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from booknlp_api.config import Settings
from booknlp_api.engine.errors import Cancelled
from booknlp_api.engine.service import NLPService
from booknlp_api.jobs.records import Job, Submission
from booknlp_api.jobs.service import JobService
from tests.conftest import database_setting


def _service(models_dir: Path, data_dir: Path, engine: NLPService, database_url: str | None = None) -> JobService:
    settings = Settings(models_dir=models_dir, model="tiny", data_dir=data_dir,
                        database_url=database_setting(database_url or "sqlite"))
    return JobService(settings, engine)


def _until(jobs: JobService, job_id: str, statuses: set[str], timeout: float = 300) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (job := jobs.get(job_id)).status in statuses:
            return job
        time.sleep(0.02)
    pytest.fail(f"job {job_id} never reached {statuses}: {jobs.get(job_id)}")


def test_stopping_lets_the_running_job_finish_within_the_grace_period(
        tiny_models_dir: Path, tmp_path: Path, tiny_service: NLPService, monkeypatch: pytest.MonkeyPatch,
        database_url: str) -> None:
    jobs = _service(tiny_models_dir, tmp_path, tiny_service, database_url)
    entered = threading.Event()
    real_analyze = tiny_service.analyze

    def analyze_once_stopping(text: str, **options: Any) -> Any:
        # The analysis starts only once the stop has begun: the job cannot finish before it.
        entered.set()
        assert jobs.worker is not None and jobs.worker._stopping.wait(60)
        return real_analyze(text, **options)

    monkeypatch.setattr(jobs.engine, "analyze", analyze_once_stopping)
    jobs.start()
    job, _ = jobs.submit(Submission(text="Scrooge signed it. " * 40, pipeline=("supersense",)))
    assert entered.wait(60)
    assert jobs.get(job.id).status == "running"
    jobs.worker.stop(grace=120)
    assert not jobs.worker.alive
    finished = jobs.get(job.id)
    assert finished.status == "succeeded" and finished.result_dir is not None and finished.attempts == 1
    assert jobs.store.workers() == {}


def test_a_job_stuck_inside_a_stage_is_requeued_at_stop_and_its_late_result_refused(
        tiny_models_dir: Path, tmp_path: Path, tiny_service: NLPService, monkeypatch: pytest.MonkeyPatch,
        database_url: str) -> None:
    jobs = _service(tiny_models_dir, tmp_path, tiny_service, database_url)
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
    assert jobs.store.ids("queued") == [job.id]

    release.set()  # the abandoned run now completes, too late
    deadline = time.monotonic() + 60
    while jobs.worker.alive and time.monotonic() < deadline:
        time.sleep(0.05)
    assert jobs.get(job.id).status == "queued"
    assert list(jobs.files.results.iterdir()) == [] and list(jobs.files.work.iterdir()) == []


def test_the_job_record_follows_progress_batch_by_batch(
        tiny_models_dir: Path, tmp_path: Path, tiny_service: NLPService, monkeypatch: pytest.MonkeyPatch,
        database_url: str) -> None:
    from booknlp_api.jobs import worker as job_worker

    monkeypatch.setattr(job_worker, "PROGRESS_EVERY", 0)  # every report written, however fast the machine
    jobs = _service(tiny_models_dir, tmp_path, tiny_service, database_url)
    written: list[dict[str, Any]] = []
    real_save = jobs.store.save_progress

    def save_progress(job_id: str, worker_id: str, progress: dict[str, Any], now: float) -> Any:
        written.append(progress)
        return real_save(job_id, worker_id, progress, now)

    monkeypatch.setattr(jobs.store, "save_progress", save_progress)
    jobs.start()
    # 100 quotes: the attribution stage runs BERT in four batches of up to 32.
    text = "\n".join(f"“Yes,” said {name}." for name in ["Elizabeth", "Darcy", "Jane", "Bingley"] * 25)
    job, _ = jobs.submit(Submission(text=text, pipeline=("entity", "quote")))
    assert _until(jobs, job.id, {"succeeded", "failed"}).status == "succeeded"
    jobs.worker.stop(grace=10)  # type: ignore[union-attr]

    within = [(p["fraction"], stage["fraction"]) for p in written for stage in p["stages"]
              if stage["name"] == "attribution" and stage["status"] == "running"]
    assert sorted({inner for _, inner in within}) == [0.0, 0.25, 0.5, 0.75]
    overall = [outer for outer, _ in within]
    assert overall == sorted(overall) and len(set(overall)) == 4


def test_a_job_past_its_time_limit_fails_as_timeout_and_the_worker_runs_the_next(
        tiny_models_dir: Path, tmp_path: Path, tiny_service: NLPService, monkeypatch: pytest.MonkeyPatch,
        database_url: str) -> None:
    settings = Settings(models_dir=tiny_models_dir, model="tiny", data_dir=tmp_path, job_timeout_seconds=2,
                        job_timeout_seconds_per_1000_chars=0.1, database_url=database_setting(database_url))
    jobs = JobService(settings, tiny_service)
    real_analyze = tiny_service.analyze
    waited: list[float] = []

    def stuck_until_stopped(text: str, **options: Any) -> Any:
        # A run that only ends when told to, as the engine does at its next stage or batch boundary.
        if text.startswith("Stuck"):
            assert options["cancel"].wait(60), "the time limit never stopped the run"
            waited.append(time.monotonic() - submitted)
            raise Cancelled("stopped at a boundary")
        return real_analyze(text, **options)

    monkeypatch.setattr(jobs.engine, "analyze", stuck_until_stopped)
    jobs.start()
    # Timed from before the submission: the limit's timer starts at the claim, later (reading the text
    # comes between it and the analysis, so timing from the analysis would be short by that much).
    submitted = time.monotonic()
    stuck, _ = jobs.submit(Submission(text="Stuck. " * 300, pipeline=("supersense",)))  # 2,100 characters
    after, _ = jobs.submit(Submission(text="Marley was dead.", pipeline=("supersense",)))
    # Two seconds at least: the short job after it finishes within that even on a loaded machine.
    assert jobs.worker is not None and jobs.worker.time_limit(stuck) == pytest.approx(2 + 0.1 * 2.1)

    failed = _until(jobs, stuck.id, {"failed", "succeeded", "cancelled"})
    assert failed.status == "failed" and failed.error is not None
    assert (failed.error.code, failed.error.message) == ("timeout", "the job ran longer than its limit of 2.21 s")
    assert waited and waited[0] >= 2.21  # not stopped before its limit
    assert _until(jobs, after.id, {"failed", "succeeded", "cancelled"}).status == "succeeded"
    assert jobs.worker.alive
    jobs.worker.stop(grace=5)


def test_without_a_time_limit_a_job_is_never_stopped_for_time(tiny_models_dir: Path, tmp_path: Path,
                                                             tiny_service: NLPService) -> None:
    jobs = JobService(Settings(models_dir=tiny_models_dir, model="tiny", data_dir=tmp_path), tiny_service)
    job, _ = jobs.submit(Submission(text="Marley was dead."))
    assert jobs.new_worker().time_limit(job) is None
