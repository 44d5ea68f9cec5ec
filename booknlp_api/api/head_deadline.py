"""A deadline on request heads: uvicorn's h11 protocol with a timer from a connection's start (or from the
first byte of a later request on a kept-alive connection) until the request line and headers are parsed.

uvicorn times only an idle kept-alive connection (``timeout_keep_alive``, armed after a response and disarmed
by the next byte), so a client that connects and sends nothing, or trickles a head a byte at a time, would hold
a connection forever. When the deadline passes the client gets a 408 in the service's error shape, with the
security headers, and the connection is closed. Bodies have their own deadline (``api.hygiene``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from booknlp_api.api.hygiene import API_POLICY, SECURITY_HEADERS


def timeout_answer(seconds: float) -> bytes:
    """The raw 408: no request was parsed, so h11 cannot frame a response and the bytes are written as they are."""
    body = json.dumps({"error": {"code": "head_timeout", "message": f"the request line and headers did not arrive "
                                 f"within {seconds:g} seconds", "details": {"head_timeout_seconds": seconds}}})
    headers = {**SECURITY_HEADERS, "Content-Security-Policy": API_POLICY, "Content-Type": "application/json",
               "Content-Length": str(len(body)), "Connection": "close"}
    head = "HTTP/1.1 408 Request Timeout\r\n" + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    return (head + "\r\n" + body).encode("ascii")


class HeadDeadlineProtocol(H11Protocol):
    """``H11Protocol`` that closes a connection whose request head is not complete within ``head_seconds``."""

    head_seconds = 30.0
    """Set on a subclass per server (``with_head_deadline``): uvicorn builds protocols with its own arguments."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm()  # the first byte of a head (the keep-alive timer covered the wait before it)
        super().data_received(data)
        self._disarm_when_parsed()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # A pipelined head that h11 holds in its buffer but could not parse yet is timed like any other.
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm()
        self._disarm_when_parsed()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _disarm_when_parsed(self) -> None:
        if self.conn.their_state is not h11.IDLE:  # the request line and headers are in (or the client left)
            self._disarm()

    def _arm(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.head_seconds, self._expired)

    def _disarm(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _expired(self) -> None:
        self.head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        self.logger.warning("408: the request head did not arrive within %gs; closing the connection",
                            self.head_seconds)
        self.transport.write(timeout_answer(self.head_seconds))
        self.transport.close()


def with_head_deadline(seconds: float) -> type[HeadDeadlineProtocol]:
    """The protocol class for uvicorn's ``http=``, with this server's deadline."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"head_seconds": seconds})
