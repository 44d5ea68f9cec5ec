"""``RateLimit-Policy`` and ``RateLimit`` on every response to a request that counted against its key's rate.

``authenticate`` counts the request and leaves the headers in the request's state; this middleware puts
them on the response whatever produced it (a JSON body, a file, a stream, an error handler), so routes
that return a ``Response`` themselves carry them too. A response that already names a limit (a 429 for
characters or jobs at once) keeps its own.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Receive, Scope, Send

from booknlp_api.api.hygiene import editing_headers

_STATE = "rate_limit_headers"


def remember(request: Request, headers: dict[str, str]) -> None:
    """The headers the response to this request carries (set once the request has been counted)."""
    setattr(request.state, _STATE, headers)


class RateLimitHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # One state dict shared with the request below, even where a router copies the scope.
        state: dict[str, Any] = scope.setdefault("state", {})

        def add(headers: MutableHeaders) -> None:
            counted = state.get(_STATE)
            if counted and "ratelimit" not in headers and "ratelimit-policy" not in headers:
                headers.update(counted)

        await self.app(scope, receive, editing_headers(send, add))


def install_rate_headers(app: FastAPI) -> None:
    app.add_middleware(RateLimitHeaders)
