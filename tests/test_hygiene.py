"""HTTP hygiene: security headers, the docs pages under their CSP in a real browser, CORS, header and body limits.

A server here is ``serve``'s own uvicorn configuration in a thread, with no worker process (no model is
needed to answer headers, docs, CORS or a slow body).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi.testclient import TestClient
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from booknlp_api.api.app import create_app
from booknlp_api.api.hygiene import API_POLICY, HTML_POLICY, SecurityHeaders
from booknlp_api.api.serve import server_config
from booknlp_api.config import Settings
from tests.server_process import free_port

ORIGIN = "https://books.example"


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(models_dir=tmp_path / "models", data_dir=tmp_path / "data", workers=0, auth="disabled",
                    **overrides)


@contextmanager
def serving(settings: Settings) -> Iterator[tuple[str, int]]:
    config = server_config(settings.model_copy(update={"port": free_port()}))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield "127.0.0.1", config.port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def _exchange(address: tuple[str, int], request: bytes, trickle: bytes = b"", every: float = 0.2) -> bytes:
    """Send ``request``, then ``trickle`` a byte at a time; everything the server answers until it closes."""
    answer = b""
    with socket.create_connection(address, timeout=30) as sock:
        try:
            sock.sendall(request)
            sock.settimeout(every)
            for byte in trickle:
                try:
                    answer += sock.recv(65536)
                    break  # the server answered: stop trickling
                except TimeoutError:
                    sock.sendall(bytes([byte]))
            sock.settimeout(30)
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:  # the server hung up on us mid-request: what it said before stands
            pass
    return answer


def test_every_response_says_nosniff_deny_and_loads_nothing(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path))) as client:
        for response in (client.get("/v1/health"), client.get("/v1/nothing"), client.get("/openapi.json"),
                         client.post("/v1/analyze", json={"text": ""})):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["content-security-policy"] == API_POLICY
        docs = client.get("/docs").headers["content-security-policy"]
        assert "frame-ancestors 'none'" in docs and "'unsafe-inline'" not in docs.split("; ")[1]


def test_a_500_gets_the_security_headers_and_hides_the_exception(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path))

    async def broken() -> None:
        raise RuntimeError("secret detail of the failure")

    app.add_api_route("/v1/broken", broken)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/v1/broken")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "details": None,
                                         "message": "an unexpected error occurred; it has been logged"}}
    assert "secret" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["content-security-policy"] == API_POLICY
    assert response.headers["x-request-id"]


def test_html_gets_a_sandboxed_policy() -> None:
    page = Route("/report", lambda _: HTMLResponse("<script>document.title = 'ran'</script>"))
    app = SecurityHeaders(Starlette(routes=[page]))
    assert TestClient(app).get("/report").headers["content-security-policy"] == HTML_POLICY


def test_cors_is_off_by_default_and_an_allowlist_when_set(tmp_path: Path) -> None:
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    with TestClient(create_app(_settings(tmp_path))) as client:
        assert "access-control-allow-origin" not in client.get("/v1/health", headers={"Origin": ORIGIN}).headers
        assert client.options("/v1/jobs", headers=preflight).status_code == 405
    with TestClient(create_app(_settings(tmp_path, cors_origins=f"{ORIGIN}, https://other.example"))) as client:
        allowed = client.options("/v1/jobs", headers=preflight)
        assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
        assert client.get("/v1/health", headers={"Origin": ORIGIN}).headers["access-control-allow-origin"] == ORIGIN
        stranger = client.get("/v1/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in stranger.headers


def test_a_trickled_body_gets_408_and_the_connection_is_closed(tmp_path: Path) -> None:
    with serving(_settings(tmp_path, body_timeout_seconds=1)) as address:
        head = (b"POST /v1/jobs HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n")
        started = time.monotonic()
        answer = _exchange(address, head + b'{"text": "', trickle=b"x" * 300)
        waited = time.monotonic() - started
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408"), answer[:300]
    assert json.loads(body)["error"]["code"] == "body_timeout"
    assert waited < 30, "the server, not the client's patience, ended the exchange"


def _head_timeout_answer(address: tuple[str, int], sent: bytes = b"", trickle: bytes = b"") -> tuple[bytes, float]:
    started = time.monotonic()
    answer = _exchange(address, sent, trickle=trickle)
    return answer, time.monotonic() - started


def _assert_head_timeout(answer: bytes) -> None:
    status, _, body = answer.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"X-Content-Type-Options: nosniff" in status and b"Connection: close" in status
    assert json.loads(body)["error"]["code"] == "head_timeout"


def test_a_silent_or_trickled_head_gets_408_and_the_connection_is_closed(tmp_path: Path) -> None:
    with serving(_settings(tmp_path, head_timeout_seconds=1)) as address:
        answer, waited = _head_timeout_answer(address)  # connects and sends nothing
        _assert_head_timeout(answer)
        assert waited < 20, "the server, not the client's patience, ended the exchange"
        # A fresh connection that trickles its request line and headers a byte at a time (0.2 s apart).
        answer, waited = _head_timeout_answer(address, trickle=b"GET /v1/health HTTP/1.1\r\nHost: test\r\n" * 5)
        _assert_head_timeout(answer)
        assert waited < 20


def test_kept_alive_connections_get_a_fresh_head_deadline_per_request(tmp_path: Path) -> None:
    request = b"GET /v1/health HTTP/1.1\r\nHost: test\r\n\r\n"
    with serving(_settings(tmp_path, head_timeout_seconds=1)) as address, \
            socket.create_connection(address, timeout=30) as sock:
        reader = sock.makefile("rb")

        def answer() -> bytes:
            status = reader.readline()
            length = 0
            while (line := reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            reader.read(length)
            return status

        for _ in range(3):  # each request on the connection well within the deadline, with pauses between
            sock.sendall(request)
            assert answer().startswith(b"HTTP/1.1 200")
            time.sleep(0.7)  # under uvicorn's keep-alive (5 s); the head deadline restarts with the next head
        sock.sendall(request[:10])  # then a head that stalls: answered 408 about a second after its first byte
        assert answer().startswith(b"HTTP/1.1 408")
        assert reader.read() == b"", "the connection was closed"


def test_headers_beyond_the_cap_are_refused(tmp_path: Path) -> None:
    with serving(_settings(tmp_path, max_header_bytes=4096)) as address:
        def get(header_bytes: int) -> bytes:
            return _exchange(address, b"GET /v1/health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
                                      b"X-Padding: " + b"a" * header_bytes + b"\r\n\r\n")
        assert get(2000).startswith(b"HTTP/1.1 200")
        status, _, body = get(8000).partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 431") and json.loads(body)["error"]["code"] == "headers_too_large"
        # A head too big for one read: uvicorn's h11 stops buffering it before the app sees anything.
        refused = get(200_000)
        assert refused == b"" or refused.startswith(b"HTTP/1.1 400"), refused[:100]


def _browser() -> str:
    found = os.environ.get("CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
    assert found, "no chromium: scripts/setup.sh installs it (or set CHROMIUM to a Chrome/Chromium binary)"
    return found


_WATCH = ("window.__csp = []; document.addEventListener('securitypolicyviolation', "
          "e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));")


def test_the_docs_pages_work_in_a_real_browser_under_their_csp(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with serving(_settings(tmp_path)) as (host, port), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_browser(), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        try:
            page = browser.new_page()
            page.add_init_script(_WATCH)
            page.goto(f"http://{host}:{port}/docs")
            page.wait_for_selector(".swagger-ui .info .title:has-text('booknlp-api')", timeout=60_000)
            page.wait_for_selector(".opblock-summary-path[data-path='/v1/jobs']", timeout=60_000)
            assert page.evaluate("fetch('/v1/health').then(r => r.status)") == 200
            assert page.evaluate("window.__csp") == []
            page.goto(f"http://{host}:{port}/redoc")
            page.wait_for_selector("h1:has-text('booknlp-api')", timeout=60_000)
            page.wait_for_selector("h2:has-text('Submit a book')", timeout=60_000)
            # ReDoc's "by Redocly" badge is an image from its CDN: blocked, as everything outside the service.
            blocked = [v for v in page.evaluate("window.__csp") if not v.startswith("img-src https://cdn.redoc.ly/")]
            assert blocked == []
            # An HTML result under its policy: markup from a book cannot run as script.
            page.route("**/report", lambda route: route.fulfill(
                status=200, body="<script>document.title = 'ran'</script><p>Marley</p>",
                headers={"Content-Type": "text/html", "Content-Security-Policy": HTML_POLICY}))
            page.goto(f"http://{host}:{port}/report")
            assert page.title() != "ran" and page.inner_text("p") == "Marley"
        finally:
            browser.close()
