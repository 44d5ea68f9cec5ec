"""``X-Request-ID``: the client's own (when it is a sane token) or a new one, on every response and log line.

The middleware sits outside even Starlette's error middleware, so a 500 carries the id too. An id from the
client that is too long or holds anything but ``A-Z a-z 0-9 . _ : - @ + = /`` is replaced, so nothing a client
sends can forge or break a log line.
"""

from __future__ import annotations

import re
import uuid

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Receive, Scope, Send

from booknlp_api.api.hygiene import editing_headers, wrap_outermost
from booknlp_api.logs import request_id

HEADER = "X-Request-ID"
_VALID = re.compile(r"[A-Za-z0-9._:\-@+=/]{1,128}")


class RequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Headers(scope=scope).get(HEADER, "")
        rid = given if _VALID.fullmatch(given) else uuid.uuid4().hex
        token = request_id.set(rid)

        def add(headers: MutableHeaders) -> None:
            headers[HEADER] = rid

        await self.app(scope, receive, editing_headers(send, add))
        # Not reset when the app raised: the server logs the exception after this returns, and that line should
        # name the request too. Each request runs in its own task (a copied context), so nothing leaks.
        request_id.reset(token)


def install_request_ids(app: FastAPI) -> None:
    wrap_outermost(app, RequestIds)
