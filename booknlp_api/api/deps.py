"""Dependencies shared by the routes, declared once as type aliases."""

from __future__ import annotations

from email.message import Message
from typing import Annotated

from fastapi import Depends, Request

from booknlp_api.api.errors import ApiError
from booknlp_api.api.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def require_json(request: Request) -> None:
    """Answer 415 for a body that is not declared JSON, instead of a puzzling validation error."""
    header = Message()
    header["content-type"] = request.headers.get("content-type", "")
    if header.get_content_type() != "application/json":
        raise ApiError(415, "unsupported_media_type",
                       f"send the request as JSON (Content-Type: application/json), not "
                       f"{request.headers.get('content-type') or 'no content type'}")


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
