"""``booknlp-api serve``: the app under uvicorn, one process (the models live in its memory)."""

from __future__ import annotations

import uvicorn

from booknlp_api.api.app import create_app
from booknlp_api.config import Settings


def serve(settings: Settings) -> None:
    # One worker: each process would load its own copy of the models and compete for the device.
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level,
                workers=1)
