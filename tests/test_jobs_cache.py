"""The result cache and result lifetimes, on a job service running its worker thread on the tiny engine:
what the cache key covers, BOOKNLP_RESULT_CACHE=false, a cached copy outliving its source, automatic expiry."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from booknlp_api.config import Settings
from booknlp_api.engine.precision import FastMode
from booknlp_api.engine.service import NLPService
from booknlp_api.jobs import service as job_service
from booknlp_api.jobs.errors import ResultExpired
from booknlp_api.jobs.records import Job, Submission
from booknlp_api.jobs.service import JobService
from booknlp_api.models.manifest import read_manifest
from tests.conftest import body_bytes, database_setting, set_job

TEXT = "Marley was dead, to begin with. There is no doubt whatever about that."
FAST = ("supersense",)
"""A pipeline that skips the slow stages: these tests are about what happens to results."""

ServiceFactory = Callable[..., JobService]


@pytest.fixture
def job_services(tiny_models_dir: Path, tmp_path: Path, tiny_service: NLPService,
                 database_url: str) -> Iterator[ServiceFactory]:
    """Job services on one data folder and database (either kind), built with the settings a test asks for;
    ``run=True`` starts a worker."""
    made: list[JobService] = []

    def make(run: bool = True, **settings: Any) -> JobService:
        jobs = JobService(Settings(models_dir=tiny_models_dir, model="tiny", data_dir=tmp_path / "data",
                                   database_url=database_setting(database_url), **settings), tiny_service)
        if run:
            jobs.start()
        made.append(jobs)
        return jobs

    yield make
    for jobs in made:
        jobs.stop()


def _until(jobs: JobService, job_id: str, done: Callable[[Job], bool], timeout: float = 300) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done(job := jobs.get(job_id)):
            return job
        time.sleep(0.05)
    pytest.fail(f"job {job_id} never got there: {jobs.get(job_id)}")


def _succeeded(jobs: JobService, submission: Submission) -> Job:
    job, _ = jobs.submit(submission)
    done = _until(jobs, job.id, lambda j: j.finished)
    assert done.status == "succeeded", done.error
    return done


def test_the_cache_key_changes_with_book_id_pipeline_model_files_and_software(
        job_services: ServiceFactory, tiny_models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = job_services(run=False)

    def key(**options: Any) -> str:
        return jobs.submit(Submission(text=TEXT, **options))[0].cache_key

    base = key()
    assert key() == base and key(sections=("tokens",)) == base  # what is returned is not what is run
    assert key(book_id="marley") != base
    assert key(pipeline=FAST) != base
    assert jobs.submit(Submission(text=TEXT + " "))[0].cache_key != base

    manifest = read_manifest(tiny_models_dir / "tiny")
    first = sorted(manifest.files)[0]
    retrained = manifest.model_copy(update={"files": {
        **manifest.files, first: manifest.files[first].model_copy(update={"sha256": "0" * 64})}})
    monkeypatch.setattr(job_service, "read_manifest", lambda _: retrained)
    assert key() != base
    monkeypatch.undo()

    upgraded = {**job_service._software("en_core_web_sm"), "booknlp": "1.0.9"}
    monkeypatch.setattr(job_service, "_software", lambda _: upgraded)
    assert key() != base
    monkeypatch.undo()

    # fast mode's key names its options on this device: other options, other bytes
    fast = key(precision="fast")
    assert fast != base and key(precision="fast") == fast
    monkeypatch.setattr(jobs.engine, "fast_mode", FastMode(parse_processes=3))
    assert key(precision="fast") != fast and key() == base


def test_with_the_result_cache_off_an_identical_submission_runs_again(job_services: ServiceFactory) -> None:
    jobs = job_services(result_cache=False)
    first = _succeeded(jobs, Submission(text=TEXT, pipeline=FAST))
    again, created = jobs.submit(Submission(text=TEXT, pipeline=FAST))
    assert created and (again.status, again.cached_from) == ("queued", None)
    rerun = _until(jobs, again.id, lambda j: j.finished)
    assert (rerun.status, rerun.cached_from, rerun.attempts) == ("succeeded", None, 1)
    assert rerun.result_dir != first.result_dir


def test_a_cached_copy_outlives_the_expiry_of_its_source(job_services: ServiceFactory) -> None:
    jobs = job_services()
    source = _succeeded(jobs, Submission(text=TEXT, pipeline=FAST, book_id="marley"))
    copy, _ = jobs.submit(Submission(text=TEXT, pipeline=FAST, book_id="marley"))
    assert (copy.status, copy.cached_from) == ("succeeded", source.id)
    expected = body_bytes(jobs.results.json(copy))

    set_job(jobs.store, source.id, expires_at=time.time() - 1)
    assert jobs.worker is not None
    jobs.worker.recovery.expire(time.time())

    with pytest.raises(ResultExpired):
        jobs.results.json(jobs.get(source.id))
    assert source.result_dir is not None and not jobs.files.result(source.result_dir).exists()
    kept = jobs.get(copy.id)
    assert not kept.expired
    assert body_bytes(jobs.results.json(kept)) == expected
    assert body_bytes(jobs.files.native_zip(kept.result_dir or ""))[:2] == b"PK"
    # The copy, still alive, is what the next identical submission is served from.
    assert jobs.submit(Submission(text=TEXT, pipeline=FAST, book_id="marley"))[0].cached_from == copy.id


def test_results_expire_by_themselves_after_the_ttl(job_services: ServiceFactory) -> None:
    # Upkeep runs every lease_seconds / 2 on the worker: nobody calls it here.
    jobs = job_services(job_ttl_seconds=1, heartbeat_seconds=0.25, lease_seconds=1)
    done = _succeeded(jobs, Submission(text=TEXT, pipeline=FAST))
    assert done.result_dir is not None and jobs.files.result(done.result_dir).is_dir()
    expired = _until(jobs, done.id, lambda j: j.expired, timeout=60)
    assert expired.status == "succeeded" and not jobs.files.result(done.result_dir).exists()
    with pytest.raises(ResultExpired):
        jobs.results.json(expired)
