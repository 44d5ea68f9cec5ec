"""A cap on request bodies, checked before any JSON is parsed, answered in the service's error shape.

Starlette's own limit answers a declared oversize body in plain text; this one answers JSON. A body
that declares its length is refused before a byte is read; a chunked one once it passes the cap.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from booknlp_api.api.errors import BodyTooLarge, body_too_large, error_response


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, uploads: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.uploads = uploads or {}
        """Paths that take larger bodies (batches of books), with their own cap."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.uploads.get(scope.get("path", "").rstrip("/"), self.max_bytes)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > cap:
            await error_response(body_too_large(cap))(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > cap:
                raise BodyTooLarge(cap)
            return message

        await self.app(scope, limited, send)
