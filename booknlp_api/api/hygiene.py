"""HTTP hygiene: security headers on every response, an opt-in CORS allowlist, a deadline on request bodies.

- ``X-Content-Type-Options: nosniff`` and frame denial (``X-Frame-Options: DENY``, CSP ``frame-ancestors
  'none'``) everywhere, 500s included (the middleware wraps the whole stack, Starlette's error middleware too).
  Every response gets a Content-Security-Policy unless its route set its own (the docs pages do,
  ``api.docs``): JSON and files load nothing (``default-src 'none'``), and HTML results (BookNLP's character
  report, which copies the book's words into HTML unescaped) are also sandboxed, so markup inside a book can
  never run as script. Request heads have a deadline too (``api.head_deadline``).
- CORS only for the origins in ``cors_origins``; unset, no CORS header is ever sent (browsers refuse
  cross-origin reads), which is right for a service called by servers.
- A body must arrive within ``body_timeout_seconds`` of its first byte being awaited: a client trickling
  bytes gets a 408 in the service's error shape and loses the connection instead of holding it forever.
  Headers larger than ``max_header_bytes`` get a 431 (and uvicorn, in ``serve``, stops buffering a head that
  grows past it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from booknlp_api.api.errors import ApiError, BodyTimeout, error_response
from booknlp_api.config import Settings

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
HTML_POLICY = API_POLICY + "; sandbox"
"""A book's HTML report: no script, style sheet, image, frame or form can load; sandboxed as a whole."""

_CORS_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "X-Request-ID"]
_CORS_EXPOSED = ["Location", "Retry-After", "RateLimit", "RateLimit-Policy", "Idempotent-Replayed", "X-Request-ID"]


SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}
"""On every response, with a Content-Security-Policy (``API_POLICY`` unless the route set its own)."""


def install_hygiene(app: FastAPI, settings: Settings) -> None:
    """Add the middleware; call it after the other middleware so that CORS answers before the body limits."""
    app.add_middleware(RequestLimits, max_header_bytes=settings.max_header_bytes,
                       body_seconds=settings.body_timeout_seconds)
    origins = cors_origins(settings)
    if origins:
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=_CORS_HEADERS, expose_headers=_CORS_EXPOSED, max_age=600)
    # Outside the whole stack: a 500 is answered by Starlette's ServerErrorMiddleware, which sits outside
    # every middleware added with add_middleware, so only a wrapper around the built stack sees it.
    wrap_outermost(app, SecurityHeaders)


def wrap_outermost(app: FastAPI, middleware: Callable[[ASGIApp], ASGIApp]) -> None:
    """Wrap ``middleware`` around the built stack, error middleware included (the last one wrapped is outermost)."""
    build = app.build_middleware_stack

    def outermost() -> ASGIApp:
        return middleware(build())

    app.build_middleware_stack = outermost  # type: ignore[method-assign]


def cors_origins(settings: Settings) -> list[str]:
    return [origin.strip() for origin in (settings.cors_origins or "").split(",") if origin.strip()]


def editing_headers(send: Send, edit: Callable[[MutableHeaders], None]) -> Send:
    """``send`` with ``edit`` applied to the response's headers as it starts (whatever produced the response)."""
    async def edited(message: Message) -> None:
        if message["type"] == "http.response.start":
            edit(MutableHeaders(scope=message))
        await send(message)

    return edited


def _security_headers(headers: MutableHeaders) -> None:
    for name, value in SECURITY_HEADERS.items():
        headers[name] = value
    if "content-security-policy" not in headers:
        html = headers.get("content-type", "").startswith("text/html")
        headers["Content-Security-Policy"] = HTML_POLICY if html else API_POLICY


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, editing_headers(send, _security_headers))


class RequestLimits:
    """Headers within ``max_header_bytes`` (431), the whole body within ``body_seconds`` (408).

    uvicorn's h11 cap holds only while a head is incomplete (a head that arrives in one read passes it), so
    the size of the headers is checked here too. Reads after the body (waiting for a disconnect) are not timed.
    """

    def __init__(self, app: ASGIApp, max_header_bytes: int, body_seconds: float) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.seconds = body_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            too_large = ApiError(431, "headers_too_large", f"the request headers take {header_bytes} bytes; at most "
                                 f"{self.max_header_bytes} are read", {"max_header_bytes": self.max_header_bytes},
                                 {"Connection": "close"})
            await error_response(too_large)(scope, receive, send)
            return
        deadline: float | None = None
        body_done = False

        async def timed() -> Message:
            nonlocal deadline, body_done
            if body_done:
                return await receive()
            if deadline is None:
                deadline = time.monotonic() + self.seconds
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                raise BodyTimeout(self.seconds) from None
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        await self.app(scope, timed, send)
