"""``Client``: the service from Python, blocking (httpx); methods in :mod:`booknlp_api.client.methods`."""

from __future__ import annotations

import time
from typing import Any, TypeVar

import httpx

from booknlp_api.client import calls, flows
from booknlp_api.client.calls import Call
from booknlp_api.client.connection import Connection
from booknlp_api.client.methods import ServiceMethods

T = TypeVar("T")


class Client(ServiceMethods):
    """A booknlp-api service: ``with Client("http://host:8000", api_key=KEY) as client: ...``.

    429 and 503 answers are sent again after their ``Retry-After`` (``max_retries`` times); submissions carry
    an ``Idempotency-Key``, so a retried one never makes two jobs. Failures raise
    :mod:`booknlp_api.client.errors`. Without arguments: ``BOOKNLP_API_URL`` and ``BOOKNLP_API_KEY``.
    """

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, timeout: float = 600.0,
                 max_retries: int = 5, backoff: float = 0.5, transport: httpx.BaseTransport | None = None) -> None:
        self.connection = Connection.of(base_url, api_key, timeout, max_retries, backoff)
        self._http = httpx.Client(transport=transport, **self.connection.httpx_options())  # type: ignore[arg-type]

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _drive(self, flow: flows.Flow[T]) -> T:
        try:
            step = next(flow)
            while True:
                reply: Any = None
                if isinstance(step, Call):
                    try:
                        reply = self._send(step)
                    except httpx.TransportError as exc:
                        step = flow.throw(exc)
                        continue
                else:
                    time.sleep(step)
                step = flow.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    def _send(self, call: Call[Any]) -> httpx.Response:
        if call.into is None:
            return self._http.send(call.request(self._http))
        response = self._http.send(call.request(self._http), stream=True)
        try:
            if response.status_code in call.ok:
                with calls.saving(call.into) as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
            else:
                response.read()  # the error shape, for the exception
        finally:
            response.close()
        return response
