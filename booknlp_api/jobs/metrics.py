"""What the job side counts for Prometheus: jobs submitted and finished, run and stage seconds, tokens, cache hits,
GPU memory. The API's ``GET /metrics`` (``api/metrics.py``) exports them with the store's gauges.

Under ``serve`` every process writes its values to files in one folder (``jobs/metrics_files.py``), so what
the worker processes count reaches the API's scrape; a process without that folder keeps its values in memory.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from booknlp_api.device import DeviceInfo
from booknlp_api.jobs.records import AnalysisInfo, Job, JobError

JOB_BUCKETS = (1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)
STAGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
"""Seconds: a short analysis takes about a second; a novel on the CPU tens of minutes, its longest stage ten."""

JOBS_SUBMITTED = Counter("booknlp_jobs_submitted_total", "Jobs accepted (analyses included), by model and "
                         "whether the result cache answered them at once.", ["model", "cached"])
JOBS_FINISHED = Counter("booknlp_jobs_finished_total", "Jobs ended, by status and error code (empty when none); "
                        "jobs answered from the cache count as succeeded.", ["status", "code"])
JOB_SECONDS = Histogram("booknlp_job_duration_seconds", "Wall time of each analysis a worker completed, by model "
                        "and device.", ["model", "device"], buckets=JOB_BUCKETS)
STAGE_SECONDS = Histogram("booknlp_stage_duration_seconds", "Seconds of each engine stage of each completed "
                          "analysis, by stage, model and device.", ["stage", "model", "device"], buckets=STAGE_BUCKETS)
TOKENS = Counter("booknlp_tokens_analysed_total", "Tokens of the texts analysed to completion, by model.", ["model"])
CACHE_HITS = Counter("booknlp_cache_hits_total", "Submissions answered from an identical earlier job's result.")
WORKER_EXITS = Counter("booknlp_worker_exits_total", "Worker processes that exited while the API ran (each is "
                       "restarted unless its models cannot load), by reason.", ["reason"])
GPU_MEMORY = Gauge("booknlp_gpu_memory_bytes", "GPU memory torch holds in the live worker processes, by device "
                   "(0 on the CPU).", ["device"], multiprocess_mode="livesum")


def job_submitted(job: Job) -> None:
    cached = job.status == "succeeded"  # a new job is born succeeded only when the cache answers it
    JOBS_SUBMITTED.labels(job.model, "true" if cached else "false").inc()
    if cached:
        CACHE_HITS.inc()
        job_finished("succeeded", None)


def job_finished(status: str, error: JobError | None) -> None:
    JOBS_FINISHED.labels(status, error.code if error is not None else "").inc()


def job_analysed(info: AnalysisInfo, seconds: float) -> None:
    JOB_SECONDS.labels(info.model, info.device).observe(seconds)
    for stage, stage_seconds in info.timings.items():
        STAGE_SECONDS.labels(stage, info.model, info.device).observe(stage_seconds)
    TOKENS.labels(info.model).inc(info.token_count)


def gpu_memory(device: DeviceInfo) -> None:
    GPU_MEMORY.labels(device.device).set(device.cuda_memory_allocated_bytes or 0)
