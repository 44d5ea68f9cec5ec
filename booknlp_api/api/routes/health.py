"""Probes: liveness (the API process serves) and readiness (a worker process has loaded the default model)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from booknlp_api.api.deps import RuntimeDep
from booknlp_api.api.errors import ApiError
from booknlp_api.api.runtime import Runtime
from booknlp_api.api.schemas import (
    DevicePublic,
    ErrorResponse,
    HealthPublic,
    LoadedModelPublic,
    ReadyPublic,
    WorkerPublic,
)
from booknlp_api.jobs.store import WorkerRecord

router = APIRouter(tags=["probes"])


async def health() -> HealthPublic:
    """200 whenever the process serves HTTP, whether or not the models are loaded."""
    # No store read and no thread: answered on the event loop at once.
    return HealthPublic()


async def ready(runtime: RuntimeDep) -> ReadyPublic:
    """200 once a worker process has loaded the default model, with its device, models and versions; else 503."""
    workers = await run_in_threadpool(runtime.jobs.live_workers)  # a store read: off the loop that answers probes
    states = {worker.state: worker for worker in reversed(workers)}  # the newest of each state
    if "ready" in states:
        return describe_ready(runtime, states["ready"], workers)
    if "loading" in states:
        raise ApiError(503, "not_ready", "the models are still loading", {"state": "loading"})
    if "failed" in states:
        raise ApiError(503, "model_load_failed", f"loading the default model failed: {states['failed'].error}",
                       {"state": "failed", "model": runtime.settings.model})
    raise ApiError(503, "not_ready", "no worker process is connected to run analyses", {"state": "no_worker"})


def describe_ready(runtime: Runtime, worker: WorkerRecord, workers: list[WorkerRecord]) -> ReadyPublic:
    models = [LoadedModelPublic(**model) for model in worker.models or []]
    return ReadyPublic(device=DevicePublic(**(worker.device or {})), models=models,
                       synthetic_models=any(m["synthetic"] for w in workers for m in w.models or []),
                       versions=runtime.versions, workers=[describe_worker(w) for w in workers])


def describe_worker(worker: WorkerRecord) -> WorkerPublic:
    return WorkerPublic(id=worker.id, host=worker.host, pid=worker.pid, state=worker.state,
                        device=DevicePublic(**worker.device) if worker.device else None,
                        models=[LoadedModelPublic(**model) for model in worker.models or []], error=worker.error)


_NOT_READY = {503: {"model": ErrorResponse, "description": "Models still loading, or loading failed."}}
for prefix in ("/v1", ""):
    # The bare paths are what probes in the wild expect; the schema documents the versioned ones.
    documented = prefix == "/v1"
    router.add_api_route(f"{prefix}/health", health, methods=["GET"], response_model=HealthPublic,
                         include_in_schema=documented, summary="Liveness")
    router.add_api_route(f"{prefix}/ready", ready, methods=["GET"], response_model=ReadyPublic,
                         responses=_NOT_READY, include_in_schema=documented, summary="Readiness")
