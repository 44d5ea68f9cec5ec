"""``AsyncClient``: the service from asyncio code (httpx); every method of
:class:`~booknlp_api.client.methods.ServiceMethods` returns an awaitable here."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import httpx

from booknlp_api.client import calls, flows
from booknlp_api.client.calls import Call
from booknlp_api.client.connection import Connection
from booknlp_api.client.methods import ServiceMethods

T = TypeVar("T")


class AsyncClient(ServiceMethods):
    """As :class:`~booknlp_api.client.Client`, awaited: ``async with AsyncClient(url, api_key=KEY) as client``."""

    def __init__(self, base_url: str | None = None, *, api_key: str | None = None, timeout: float = 600.0,
                 max_retries: int = 5, backoff: float = 0.5,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.connection = Connection.of(base_url, api_key, timeout, max_retries, backoff)
        self._http = httpx.AsyncClient(transport=transport, **self.connection.httpx_options())  # type: ignore[arg-type]

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _drive(self, flow: flows.Flow[T]) -> T:  # type: ignore[override]
        try:
            step = next(flow)
            while True:
                reply: Any = None
                if isinstance(step, Call):
                    try:
                        reply = await self._send(step)
                    except httpx.TransportError as exc:
                        step = flow.throw(exc)
                        continue
                else:
                    await asyncio.sleep(step)
                step = flow.send(reply)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]

    async def _send(self, call: Call[Any]) -> httpx.Response:
        if call.into is None:
            return await self._http.send(call.request(self._http))
        response = await self._http.send(call.request(self._http), stream=True)
        try:
            if response.status_code in call.ok:
                with calls.saving(call.into) as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
            else:
                await response.aread()  # the error shape, for the exception
        finally:
            await response.aclose()
        return response
