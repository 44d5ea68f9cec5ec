"""``booknlp-api serve``: the app under uvicorn, one API process; its lifespan starts the worker processes."""

from __future__ import annotations

import uvicorn

from booknlp_api.api.app import create_app
from booknlp_api.config import Settings


def serve(settings: Settings) -> None:
    # One uvicorn process: each would start its own BOOKNLP_WORKERS worker processes (model copies).
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                workers=1)
