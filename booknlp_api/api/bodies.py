"""A job's result as an HTTP response: a file from disk, bytes, or chunks streamed from the database."""

from __future__ import annotations

from pathlib import Path

from fastapi import Response
from fastapi.responses import FileResponse, StreamingResponse

from booknlp_api.jobs.files import Body


def body_response(body: Body, media_type: str, filename: str | None = None) -> Response:
    if isinstance(body, Path):
        return FileResponse(body, media_type=media_type, filename=filename)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'} if filename else None
    if isinstance(body, bytes):
        return Response(body, media_type=media_type, headers=headers)
    # A sync iterator: Starlette reads it in a thread, so the event loop never waits on the database.
    return StreamingResponse(body, media_type=media_type, headers=headers)
