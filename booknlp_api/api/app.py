"""The application factory: routes, error handlers and docs wired here; the engine starts in ``lifespan``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import booknlp_api
from booknlp_api.api.contract import install_contract
from booknlp_api.api.docs import install_docs
from booknlp_api.api.errors import install_error_handlers
from booknlp_api.api.hygiene import install_hygiene
from booknlp_api.api.limits import BodySizeLimit
from booknlp_api.api.metrics import install_metrics
from booknlp_api.api.page import install_page
from booknlp_api.api.rate_headers import install_rate_headers
from booknlp_api.api.request_ids import install_request_ids
from booknlp_api.api.routes import analyze, batches, events, health, info, jobs
from booknlp_api.api.runtime import Runtime, max_body_bytes
from booknlp_api.config import Settings

DESCRIPTION = """BookNLP as a service: entities, quotes and their speakers, supersenses, events and characters
of English fiction. Every error has the shape `{"error": {"code", "message", "details"}}`.
Results from *synthetic* models (random weights, for testing) are linguistically meaningless; every
place that names a model says whether it is synthetic."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = Runtime.start(settings)
        try:
            yield
        finally:
            app.state.runtime.stop()

    app = FastAPI(title="booknlp-api", version=booknlp_api.__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes(settings),
                       uploads={"/v1/batches": settings.max_batch_bytes + 65_536})
    install_rate_headers(app)
    install_hygiene(app, settings)
    install_error_handlers(app)
    install_metrics(app)
    install_request_ids(app)
    install_docs(app)
    install_contract(app, settings)
    install_page(app)
    for router in (analyze.router, jobs.router, batches.router, events.router, health.router, info.router):
        app.include_router(router)
    return app

