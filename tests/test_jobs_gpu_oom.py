"""A GPU running out of memory fails that job with a message saying so; the worker takes the next job."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from booknlp_api.config import Settings
from booknlp_api.engine.service import NLPService
from booknlp_api.jobs.records import Job, Submission
from booknlp_api.jobs.service import JobService


def _finished(jobs: JobService, job_id: str, timeout: float = 120) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (job := jobs.get(job_id)).finished:
            return job
        time.sleep(0.05)
    pytest.fail(f"job {job_id} did not finish: {jobs.get(job_id)}")


def test_cuda_out_of_memory_fails_the_job_cleanly_and_the_worker_carries_on(
        tiny_models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(models_dir=tiny_models_dir, model="tiny", data_dir=tmp_path, result_cache=False)
    engine = NLPService(settings)
    tagger = engine.load("tiny", "supersense").entity
    real_tag = tagger.tag
    calls = {"n": 0}

    def out_of_memory_once(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:  # what torch raises when a CUDA allocation fails
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_tag(*args, **kwargs)

    monkeypatch.setattr(tagger, "tag", out_of_memory_once)
    jobs = JobService(settings, engine)
    jobs.start()
    try:
        first, _ = jobs.submit(Submission(text="Marley was dead: to begin with.", pipeline=("supersense",)))
        failed = _finished(jobs, first.id)
        second, _ = jobs.submit(Submission(text="Scrooge signed it.", pipeline=("supersense",)))
        succeeded = _finished(jobs, second.id)
    finally:
        jobs.stop()
    assert failed.status == "failed" and failed.error is not None
    assert (failed.error.code, failed.error.stage) == ("device_out_of_memory", "tagger")
    assert "the GPU ran out of memory" in failed.error.message
    assert succeeded.status == "succeeded"
