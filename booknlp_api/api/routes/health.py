"""Probes: liveness (the process serves) and readiness (the default model is loaded)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from booknlp_api.api.deps import RuntimeDep
from booknlp_api.api.errors import ApiError
from booknlp_api.api.runtime import Runtime
from booknlp_api.api.schemas import DevicePublic, ErrorResponse, HealthPublic, LoadedModelPublic, ReadyPublic

router = APIRouter(tags=["probes"])


async def health() -> HealthPublic:
    """200 whenever the process serves HTTP, whether or not the models are loaded."""
    return HealthPublic()


async def ready(runtime: RuntimeDep) -> ReadyPublic:
    """200 once the default model is loaded, with the device, the models in memory and versions; else 503."""
    warmup = runtime.warmup
    if warmup.state == "loading":
        raise ApiError(503, "not_ready", "the models are still loading", {"state": warmup.state})
    if warmup.state == "failed":
        raise ApiError(503, "model_load_failed", f"loading the default model failed: {warmup.error}",
                       {"state": warmup.state, "model": runtime.settings.model})
    return describe_ready(runtime)


def describe_ready(runtime: Runtime) -> ReadyPublic:
    models = [
        LoadedModelPublic(name=name, synthetic=parts.manifest.synthetic, seed=parts.manifest.seed,
                          source=parts.manifest.source, components=list(parts.loaded()),
                          load_seconds=dict(parts.load_seconds))
        for name, parts in runtime.service.loaded_models().items()
    ]
    return ReadyPublic(device=DevicePublic(**asdict(runtime.service.device_info())), models=models,
                       synthetic_models=any(m.synthetic for m in models), versions=runtime.versions)


_NOT_READY = {503: {"model": ErrorResponse, "description": "Models still loading, or loading failed."}}
for prefix in ("/v1", ""):
    # The bare paths are what probes in the wild expect; the schema documents the versioned ones.
    documented = prefix == "/v1"
    router.add_api_route(f"{prefix}/health", health, methods=["GET"], response_model=HealthPublic,
                         include_in_schema=documented, summary="Liveness")
    router.add_api_route(f"{prefix}/ready", ready, methods=["GET"], response_model=ReadyPublic,
                         responses=_NOT_READY, include_in_schema=documented, summary="Readiness")
