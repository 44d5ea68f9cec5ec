"""What this service offers: models, pipes, sections, limits and versions."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from booknlp_api.api.auth import UNAUTHORIZED, authenticate
from booknlp_api.api.deps import RuntimeDep
from booknlp_api.api.runtime import max_body_bytes
from booknlp_api.api.schemas import AvailableModelPublic, InfoPublic, Limits, PrecisionPublic
from booknlp_api.engine.pipeline import PIPES
from booknlp_api.engine.result_schema import SECTIONS

router = APIRouter(tags=["info"], dependencies=[Depends(authenticate)],
                   responses=UNAUTHORIZED)


@router.get("/v1/info", response_model=InfoPublic, summary="Models, pipes, sections and limits")
def info(runtime: RuntimeDep) -> InfoPublic:
    """Every model in the models folder (synthetic ones flagged), the pipes and sections a request may
    name, and the limits that apply to it."""
    settings = runtime.settings
    loaded = {model["name"] for worker in runtime.jobs.live_workers() if worker.state == "ready"
              for model in worker.models or []}
    models = [
        AvailableModelPublic(name=name, synthetic=manifest.synthetic, seed=manifest.seed, source=manifest.source,
                             loaded=name in loaded, components=manifest.components)
        for name, manifest in runtime.service.available_models().items()
    ]
    limits = Limits(max_analyze_chars=settings.max_analyze_chars, max_body_bytes=max_body_bytes(settings),
                    max_job_chars=settings.max_job_chars, max_job_bytes=settings.max_job_bytes,
                    max_queued_jobs=settings.max_queued_jobs, analyze_wait_seconds=settings.analyze_wait_seconds,
                    job_ttl_seconds=settings.job_ttl_seconds)
    engine = runtime.service
    precisions = [
        PrecisionPublic(name="exact", options=[],
                        description="BookNLP's own computation: native files byte-identical to BookNLP.process()."),
        PrecisionPublic(name="fast", options=engine.fast_mode.describe(engine.device),
                        description="May change results slightly for speed; every option kept agrees with exact "
                                    "mode on at least 98% of decisions in our benchmarks (docs/PERFORMANCE.md). "
                                    "With no option for this device, it computes what exact mode does."),
    ]
    return InfoPublic(default_model=settings.model, default_precision=settings.precision, precisions=precisions,
                      models=models, pipes=list(PIPES), sections=list(SECTIONS), limits=limits,
                      versions=runtime.versions)
